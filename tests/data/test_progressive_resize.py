"""Progressive resizing (`data.train_sizes`): which size each epoch trains at, that it shrinks
exactly the augmented batch (no extra random draws), and the one-line refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError
from cnnlab.training.build import build, build_model
from cnnlab.training.validation import validate_config
from tests.data.test_fast_path import datamodule, through


def first_batch(dm) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return next(iter(dm.train_dataloader()))


@pytest.mark.parametrize("channels_last", [True, False])
def test_each_epoch_trains_at_its_size_and_evaluation_at_full_size(make_cfg, channels_last):
    dm = datamodule(
        make_cfg,
        augment="airbench",
        batch_size=20,
        train_sizes="[16,24,0]",
        channels_last=str(channels_last).lower(),
    )
    batch = first_batch(dm)
    for epoch, side in [(0, 16), (1, 24), (2, 32), (7, 32)]:  # the last entry holds
        ((images, _),) = through(dm, [batch], training=True, epoch=epoch)
        assert images.shape[-2:] == (side, side), epoch
        assert images.is_contiguous(memory_format=torch.channels_last) == channels_last
    test_images, test_labels = next(iter(dm.test_dataloader()))
    ((images, _),) = through(dm, [(test_images, test_labels)], training=False, epoch=0)
    assert images.shape[-2:] == (32, 32)


def test_resizing_shrinks_the_same_augmented_batch(make_cfg):
    """Same seed, same batch: the resized batch is the full-size one, shrunk (antialiased
    bilinear), so the augmentation stream and resume state do not depend on the sizes."""
    full = datamodule(make_cfg, augment="airbench", batch_size=20)
    small = datamodule(make_cfg, augment="airbench", batch_size=20, train_sizes="[20]")
    batch = first_batch(full)
    ((expected, labels_a),) = through(full, [batch], training=True, epoch=3)
    ((got, labels_b),) = through(small, [batch], training=True, epoch=3)
    assert torch.equal(labels_a, labels_b)
    shrunk = F.interpolate(expected, size=(20, 20), mode="bilinear", antialias=True)
    torch.testing.assert_close(got, shrunk, rtol=0, atol=1e-6)
    assert torch.equal(full._augment_generator.get_state(), small._augment_generator.get_state())


@pytest.mark.parametrize("value", ["[33]", "[-1]", "24", "[2.5]", "[true]"])
def test_bad_train_sizes_are_one_line_naming_the_key(make_cfg, value):
    cfg = make_cfg(["data=cifar10", f"data.train_sizes={value}"])
    with pytest.raises(CnnlabError, match=r"data\.train_sizes must be image sides in 0\.\.32"):
        validate_config(cfg)


def test_a_model_that_needs_the_full_size_is_refused_before_training(make_cfg):
    cfg = make_cfg(["model=simple_cnn", "data.train_sizes=[16,0]"])
    dm = build(cfg.data, "data")
    with pytest.raises(CnnlabError, match=r"model SimpleCNN cannot train on 16x16 images") as err:
        build_model(cfg.model, dm)
    assert "\n" not in str(err.value) and "model=airbench" in str(err.value)
    airbench = make_cfg(["model=airbench", "data.train_sizes=[16,0]"])
    model = build_model(airbench.model, build(airbench.data, "data"))  # global pool: any size
    assert model.training
