"""The fast data path: batched augmentation against a per-sample reference, and the
device-resident loader against the DataLoader path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cnnlab.augment import FlipCrop
from cnnlab.augment.batch import base_flip, cutout, random_shifts, translate
from cnnlab.data.device import DeviceBatches
from cnnlab.data.sampling import EpochSampler
from cnnlab.errors import CnnlabError
from cnnlab.training.build import build
from cnnlab.training.validation import validate_config


def images_u8(n: int = 48, c: int = 3, h: int = 10, w: int = 9, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(seed)).to(
        torch.uint8
    )


def reference_crop(image: np.ndarray, dy: int, dx: int, pad: int, mode: str, flip: bool):
    """One image, the textbook way: flip, pad, crop."""
    if flip:
        image = image[:, :, ::-1]
    padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), mode=mode)
    return padded[:, dy : dy + image.shape[1], dx : dx + image.shape[2]]


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("zeros", "constant")])
@pytest.mark.parametrize("pad", [1, 4])
def test_translate_matches_per_sample_pad_and_crop(mode, np_mode, pad):
    x = images_u8()
    g = torch.Generator().manual_seed(1)
    dy, dx = random_shifts(len(x), pad, g)
    flip = torch.rand(len(x), generator=g) < 0.5
    out = translate(x, dy, dx, pad, mode, flip)
    assert out.shape == x.shape and out.dtype == torch.uint8
    for i in range(len(x)):
        ref = reference_crop(x[i].numpy(), int(dy[i]), int(dx[i]), pad, np_mode, bool(flip[i]))
        np.testing.assert_array_equal(out[i].numpy(), ref)
    assert not torch.equal(out, x)  # the offsets did move something


def test_cutout_matches_per_sample_square():
    x = images_u8(c=3, h=12, w=12)
    g = torch.Generator().manual_seed(2)
    ys, xs = torch.randint(0, 12 - 5 + 1, (2, len(x)), generator=g)
    fill = torch.tensor([10, 20, 30], dtype=torch.uint8)
    out = cutout(x, ys, xs, 5, fill)
    for i in range(len(x)):
        ref = x[i].clone()
        ref[:, ys[i] : ys[i] + 5, xs[i] : xs[i] + 5] = fill.view(3, 1, 1)
        assert torch.equal(out[i], ref)
    assert not torch.equal(out, x) and torch.equal(x, images_u8(c=3, h=12, w=12))  # not in place


def test_flipcrop_batch_equals_per_sample_reference_with_the_same_draws():
    """The batched recipe (alternating flip, translate, cutout) == a per-sample loop."""
    x, index = images_u8(h=16, w=16), torch.arange(100, 148)
    aug = FlipCrop(flip="alternating", padding=2, cutout=4, cutout_fill=0.5, seed=7)
    out = aug.batch(x, torch.Generator().manual_seed(3), index=index, epoch=1)
    g = torch.Generator().manual_seed(3)  # replay the draws in the documented order
    dy, dx = random_shifts(len(x), 2, g)
    cy = torch.randint(0, 16 - 4 + 1, (len(x),), generator=g)
    cx = torch.randint(0, 16 - 4 + 1, (len(x),), generator=g)
    flips = ~base_flip(index, 7)  # odd epoch: the other half
    for i in range(len(x)):
        ref = reference_crop(x[i].numpy(), int(dy[i]), int(dx[i]), 2, "reflect", bool(flips[i]))
        ref = torch.from_numpy(ref.copy())
        ref[:, cy[i] : cy[i] + 4, cx[i] : cx[i] + 4] = 128
        assert torch.equal(out[i], ref), i


def test_alternating_flip_mirrors_each_image_once_per_two_epochs():
    index = torch.arange(10_000)
    even, odd = base_flip(index, 0), ~base_flip(index, 0)
    assert torch.all(even ^ odd)  # exactly one of two consecutive epochs mirrors each image
    assert 0.45 < even.float().mean() < 0.55  # about half per epoch
    assert not torch.equal(base_flip(index, 0), base_flip(index, 1))  # the seed picks the half
    x = images_u8(n=4)
    aug = FlipCrop(flip="alternating", padding=0, seed=0)
    flips = base_flip(torch.arange(4), 0)
    out0 = aug.batch(x, torch.Generator(), index=torch.arange(4), epoch=0)
    out1 = aug.batch(x, torch.Generator(), index=torch.arange(4), epoch=1)
    for i in range(4):
        assert torch.equal(out0[i], x[i].flip(-1) if flips[i] else x[i])
        assert torch.equal(out1[i], x[i] if flips[i] else x[i].flip(-1))


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"flip": "sometimes"}, "augment.flip"),
        ({"padding": -1}, "augment.padding"),
        ({"cutout": -2}, "augment.cutout"),
        ({"cutout_fill": 2.0}, "augment.cutout_fill"),
    ],
)
def test_flipcrop_rejects_bad_options(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        FlipCrop(**kwargs)


# -- the loaders ----------------------------------------------------------------------------
def datamodule(make_cfg, augment: str = "none", **data):
    overrides = [f"augment={augment}", *(f"data.{k}={v}" for k, v in data.items())]
    cfg = make_cfg(overrides)
    dm = build(cfg.data, "data", augment=build(cfg.augment, "augment"))
    dm.setup("fit")
    dm.setup("test")
    return dm


class FakeTrainer:
    """The two trainer attributes the DataModule reads in `on_after_batch_transfer`."""

    def __init__(self, training: bool, epoch: int = 0) -> None:
        self.training = training
        self.current_epoch = epoch


def through(dm, batches, training: bool, epoch: int = 0):
    dm.trainer = FakeTrainer(training, epoch)
    try:
        return [dm.on_after_batch_transfer(b, 0) for b in batches]
    finally:
        dm.trainer = None


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_fast_path_and_dataloader_path_give_the_same_batches(make_cfg):
    fast = datamodule(make_cfg, loader="device", batch_size=32, eval_batch_size=24)
    slow = datamodule(make_cfg, loader="dataloader", batch_size=32, eval_batch_size=24)
    assert isinstance(fast.val_dataloader(), DeviceBatches)
    assert isinstance(slow.val_dataloader(), DataLoader)
    for name in ("val_dataloader", "test_dataloader"):  # unshuffled: identical batch by batch
        a = through(fast, getattr(fast, name)(), training=False)
        b = through(slow, getattr(slow, name)(), training=False)
        assert_same_batches(a, b)
        assert a[0][0].dtype == torch.float32
    # Training: both paths take epoch 3's order from the same seeded sampler.
    train, loader = fast.train_dataloader(), slow.train_dataloader()
    train.sampler.set_epoch(3)
    loader.sampler.set_epoch(3)
    raw_fast, raw_slow = list(train), list(loader)
    for (xa, ya, ia), (xb, yb, ib) in zip(raw_fast, raw_slow, strict=True):
        assert torch.equal(ia, ib) and torch.equal(xa, xb) and torch.equal(ya, yb)
    assert_same_batches(through(fast, raw_fast, True), through(slow, raw_slow, True))


def test_training_batches_keep_labels_with_their_augmented_images(make_cfg):
    """Label-preserving: each augmented image comes from the source image of its label."""
    dm = datamodule(make_cfg, augment="airbench", batch_size=40)
    dm.augment = FlipCrop(flip="alternating", padding=2, seed=0)
    for images, labels, index in dm.train_dataloader():
        assert torch.equal(labels, dm.train_split.labels[index])
        gen_state = dm._augment_generator.get_state()
        ((normalised, out_labels),) = through(dm, [(images, labels, index)], True, epoch=2)
        assert torch.equal(out_labels, labels)
        g = torch.Generator()
        g.set_state(gen_state)
        dy, dx = random_shifts(len(images), 2, g)
        flips = base_flip(index, 0)
        source = dm.train_split.images[index]
        for i in range(len(images)):
            ref = reference_crop(
                source[i].numpy(), int(dy[i]), int(dx[i]), 2, "reflect", bool(flips[i])
            )
            expected = dm.normalize(torch.from_numpy(ref.copy())[None])[0]
            assert torch.equal(normalised[i], expected)
        break


def test_epoch_order_is_a_seeded_permutation_per_epoch(make_cfg):
    dm = datamodule(make_cfg, batch_size=64)
    sampler = dm.train_dataloader().sampler
    first = torch.tensor(list(sampler))
    n = len(dm.train_split)
    assert torch.equal(first.sort().values, torch.arange(n))  # each sample once
    sampler.set_epoch(1)
    assert not torch.equal(torch.tensor(list(sampler)), first)
    replay = EpochSampler(dm.train_split, seed=dm.seed, shuffle=True)
    assert torch.equal(torch.tensor(list(replay)), first)  # replayable (resume)
    other = EpochSampler(dm.train_split, seed=dm.seed + 1, shuffle=True)
    assert not torch.equal(torch.tensor(list(other)), first)
    assert list(EpochSampler(range(7), seed=0, shuffle=False)) == list(range(7))


def test_device_batches_cover_the_split_and_honour_drop_last(make_cfg):
    dm = datamodule(make_cfg, batch_size=64)
    n = len(dm.train_split)
    loader = dm.train_dataloader()
    seen = torch.cat([index for _, _, index in loader])
    assert len(loader) == -(-n // 64) and torch.equal(seen.sort().values, torch.arange(n))
    sampler = EpochSampler(dm.train_split, seed=0, shuffle=True)
    dropped = DeviceBatches(dm.train_split, 64, sampler, drop_last=True)
    assert len(dropped) == n // 64 and all(len(b[0]) == 64 for b in dropped)
    # Resident: on CPU the loader serves the split's own storage (no copy per epoch).
    assert loader.images.data_ptr() == dm.train_split.images.data_ptr()


def test_unknown_loader_is_one_clear_error(make_cfg):
    cfg = make_cfg(["data.loader=fast"])
    with pytest.raises(CnnlabError, match=r"data\.loader must be one of device, dataloader"):
        validate_config(cfg)
