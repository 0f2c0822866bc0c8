"""airbench's components as suite parts: whitening init, the net's switches, scaled SGD,
the warm-up/decay schedule, lookahead, freezing, TTA, and the experiments that wire them."""

from __future__ import annotations

import itertools
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf

from cnnlab.recipes.airbench import TRICKS
from cnnlab.recipes.airbench.callbacks import Lookahead
from cnnlab.recipes.airbench.net import AirbenchNet, WhiteningConv, patch_covariance
from cnnlab.recipes.airbench.optim import scaled_sgd
from cnnlab.recipes.airbench.schedule import warmup_decay, warmup_decay_factor
from cnnlab.training.task import build_run, train
from cnnlab.training.tta import shifted, tta_logits


def correlated_images(n: int = 400, seed: int = 0) -> torch.Tensor:
    """Smooth, channel-mixed noise: neighbouring pixels and channels strongly correlated."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 3, 20, 20, generator=g)
    smooth = F.avg_pool2d(noise, 3, stride=1, padding=1)
    mix = torch.tensor([[1.0, 0.8, 0.6], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    return torch.einsum("dc,nchw->ndhw", mix, smooth) * 2.0 + 0.3


def patch_matrix(images: torch.Tensor, k: int) -> torch.Tensor:
    return F.unfold(images, k).transpose(1, 2).reshape(-1, images.shape[1] * k * k)


def test_whitening_conv_whitens_training_patches():
    images = correlated_images()
    raw = patch_covariance(images, 2)
    assert (raw - torch.eye(12, dtype=raw.dtype)).abs().max() > 0.5  # far from white before
    conv = WhiteningConv(3, kernel_size=2, eps=1e-9)
    conv.init_from_data(images)
    with torch.no_grad():
        out = F.conv2d(images, conv.weight)  # the filters alone (the bias only shifts)
    half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = half.T @ half / len(half)
    np.testing.assert_allclose(cov.numpy(), np.eye(12), atol=2e-3)
    assert torch.equal(out[:, 12:], -out[:, :12])  # the negated copies
    assert not conv.weight.requires_grad and conv.bias.requires_grad
    # patch_covariance agrees with the plain patch matrix (chunking changes nothing).
    patches = patch_matrix(images, 2).double()
    np.testing.assert_allclose(
        patch_covariance(images, 2, chunk=7).numpy(), (patches.T @ patches / len(patches)).numpy()
    )


def test_airbench_net_switches():
    net = AirbenchNet(3, 10, 32, widths=(8, 16, 16))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    tagged = [p for p in net.parameters() if getattr(p, "lr_scale", None) == 64.0]
    assert len(tagged) == 6  # the BatchNorm shifts of 3 blocks x 2 convs
    assert not any(
        m.weight.requires_grad for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)
    )
    # Dirac init: at init the first C_in outputs of each 3x3 conv copy its input.
    conv = net.blocks[1].convs[0]
    x = torch.randn(1, conv.in_channels, 5, 5)
    assert torch.allclose(conv(x)[:, : conv.in_channels], x, atol=1e-6)
    plain = AirbenchNet(1, 10, 28, widths=(8, 16, 16), whiten=False, dirac_init=False)
    assert plain.stem.weight.requires_grad and plain(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    deep = AirbenchNet(3, 10, 32, widths=(8, 16, 16), convs_per_block=3)
    assert len(deep.blocks[0].convs) == 3 and deep(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="convs_per_block"):
        AirbenchNet(3, 10, 32, convs_per_block=4)


def test_scaled_sgd_scales_lr_and_divides_decay_for_tagged_parameters():
    net = AirbenchNet(3, 10, 32, widths=(8, 16, 16), bias_lr_scale=64.0)
    opt = scaled_sgd(net.parameters(), lr=0.5, momentum=0.85, weight_decay=1e-3)
    groups = {g["lr"]: g for g in opt.param_groups}
    assert set(groups) == {0.5, 32.0}
    assert groups[32.0]["weight_decay"] == pytest.approx(1e-3 / 64)
    assert groups[0.5]["weight_decay"] == pytest.approx(1e-3)
    assert all(g["nesterov"] and g["momentum"] == 0.85 for g in opt.param_groups)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))


def test_warmup_decay_is_airbenchs_triangle():
    total = 100
    f = [warmup_decay_factor(s, total, 0.2, 0.23, 0.07) for s in range(total + 1)]
    assert f[0] == pytest.approx(0.2) and max(f) == pytest.approx(1.0) and f[23] == 1.0
    assert f[total] == pytest.approx(0.07)
    assert all(a <= b for a, b in itertools.pairwise(f[:24]))  # warm-up rises
    assert all(a >= b for a, b in itertools.pairwise(f[23:]))  # then decays
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = warmup_decay(opt, total)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.4)
    for _ in range(23):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2.0)


def fake_trainer(step: int, epoch: int = 0, batches: int = 100, total: int = 1000):
    return types.SimpleNamespace(
        global_step=step,
        current_epoch=epoch,
        num_training_batches=batches,
        estimated_stepping_batches=total,
        max_steps=-1,
    )


def test_lookahead_averages_weights_and_writes_them_back():
    module = types.SimpleNamespace(model=torch.nn.Linear(2, 2))
    weight = module.model.weight
    look = Lookahead(every_n_steps=5, decay_base=0.95, decay_pow=3.0)
    look.on_train_batch_end(fake_trainer(5), module, None, None, batch_idx=4)  # snapshot
    start = weight.detach().clone()
    with torch.no_grad():
        weight.add_(1.0)  # an optimizer's move
    look.on_train_batch_end(fake_trainer(7), module, None, None, batch_idx=6)  # not a 5th step
    assert torch.allclose(weight, start + 1.0)
    look.on_train_batch_end(fake_trainer(500), module, None, None, batch_idx=9)
    decay = 0.95**5 * 0.5**3
    assert torch.allclose(weight, decay * start + (1 - decay) * (start + 1.0))
    assert torch.allclose(look.average["weight"], weight)
    with torch.no_grad():
        weight.add_(1.0)
    look.on_train_batch_end(fake_trainer(501), module, None, None, batch_idx=99)  # epoch end
    assert torch.allclose(weight, look.average["weight"])  # back to the average


def test_tta_views_are_the_documented_average():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(5)
    )
    x = torch.randn(6, 3, 8, 8)
    model(x)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    assert torch.equal(shifted(x, 1, 1), padded[..., 0:8, 0:8])
    assert torch.equal(shifted(x, -1, -1), padded[..., 2:10, 2:10])

    def mirror(v):
        return (model(v) + model(v.flip(-1))) / 2

    expected = (
        0.5 * mirror(x)
        + 0.25 * mirror(padded[..., 0:8, 0:8])
        + 0.25 * mirror(padded[..., 2:10, 2:10])
    )
    assert torch.allclose(tta_logits(model, x, "flip_translate"), expected, atol=1e-6)
    assert torch.allclose(tta_logits(model, x, "flip"), mirror(x))
    with pytest.raises(ValueError, match=r"module\.tta"):
        tta_logits(model, x, "rotate")


SMALL = ["model.widths=[8,16,16]", "data.batch_size=50", "data.eval_batch_size=50"]


LOOKAHEAD_AND_FREEZE = {"Lookahead", "FreezeAfterEpochs"}


@pytest.mark.parametrize(
    "experiment,tricks",
    [
        ("airbench94", LOOKAHEAD_AND_FREEZE),
        ("airbench96", LOOKAHEAD_AND_FREEZE),
        ("cifar10_fast_cpu", LOOKAHEAD_AND_FREEZE),
        ("fmnist_fast_cpu", LOOKAHEAD_AND_FREEZE),
        ("airbench94_muon", {"FreezeAfterEpochs"}),
        ("cifar10_94_cpu", {"FreezeAfterEpochs"}),
        ("cifar10_85_cpu", {"FreezeAfterEpochs"}),
        ("fmnist_93_cpu", {"FreezeAfterEpochs"}),
        ("fmnist_95_cpu", LOOKAHEAD_AND_FREEZE),
    ],
)
def test_speed_experiments_build_and_run(make_cfg, experiment, tricks):
    """Each recipe composes, builds and runs a fit+test step on tiny synthetic data."""
    cfg = make_cfg([f"experiment={experiment}", "debug=fast", *SMALL])
    metrics = train(cfg)
    assert metrics["global_step"] == 1
    _, module, trainer = build_run(cfg)
    names = {type(c).__name__ for c in trainer.callbacks}
    assert tricks <= names
    assert module.tta in ("flip", "flip_translate")
    assert type(module.model).__name__ == "AirbenchNet"


TRICK_ROWS = [(name, recipe) for name, trick in TRICKS.items() for recipe in trick.recipes]


@pytest.mark.parametrize("name,recipe", TRICK_ROWS)
def test_every_trick_row_switches_its_key_off_in_its_recipes(make_cfg, name, recipe):
    """A TRICKS row's ablation composes onto each recipe it names, changes the row's switch
    there, and the ablated recipe still builds."""
    trick = TRICKS[name]
    on = make_cfg([f"experiment={recipe}"])
    off = make_cfg([f"experiment={recipe}", trick.ablate])
    assert OmegaConf.select(on, trick.switch) != OmegaConf.select(off, trick.switch)
    build_run(off)


class BiasSpy(Callback):
    """Records the whitening conv's bias at the end of every training epoch."""

    def __init__(self) -> None:
        self.biases: list[torch.Tensor] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.biases.append(pl_module.model.stem.bias.detach().clone())


def test_whitening_is_initialised_at_fit_start_and_bias_frozen_later(make_cfg):
    cfg = make_cfg(
        [
            "experiment=airbench94",
            *SMALL,
            "trainer.max_epochs=2",
            "callbacks.freeze_whiten_bias.epochs=1",
            "callbacks.rich_progress_bar=null",
            "test=false",
        ]
    )
    datamodule, module, trainer = build_run(cfg)
    stem = module.model.stem
    before = stem.weight.detach().clone()
    spy = BiasSpy()
    trainer.callbacks.append(spy)
    trainer.fit(module, datamodule=datamodule)
    assert not torch.equal(stem.weight, before)  # whitened from the training images
    assert not stem.bias.requires_grad  # frozen after epoch 1
    assert not torch.equal(spy.biases[0], torch.zeros_like(stem.bias))  # trained in epoch 1
    assert torch.equal(spy.biases[0], spy.biases[1])  # untouched in epoch 2


def test_compile_switch_compiles_the_model_in_place(make_cfg):
    _, module, _ = build_run(make_cfg(["compile=true", "model=simple_cnn"]))
    assert module.model._compiled_call_impl is not None
    assert all(not k.startswith("_orig_mod") for k in module.state_dict())


@pytest.mark.real_data
def test_tta_never_lowers_accuracy_of_a_trained_model(make_cfg, real_data_dir):
    """A small airbench net trained briefly on real Fashion-MNIST (with flip + translate),
    then the official test set under each TTA level: more views, never lower accuracy."""
    cfg = make_cfg(
        [
            "experiment=fmnist_fast_cpu",
            "model.widths=[8,16,32]",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=24",
            "trainer.limit_val_batches=1",
            "callbacks.rich_progress_bar=null",
            "logger=csv",
            "test=false",
        ],
        data_dir=real_data_dir,
    )
    torch.manual_seed(0)
    datamodule, module, trainer = build_run(cfg)
    trainer.fit(module, datamodule=datamodule)
    accuracy = {}
    for level in ("none", "flip", "flip_translate"):
        module.tta = level
        accuracy[level] = trainer.test(module, datamodule=datamodule, verbose=False)[0]["test/acc"]
    assert accuracy["none"] > 0.6  # the fixture learned something
    assert accuracy["flip"] >= accuracy["none"]
    assert accuracy["flip_translate"] >= accuracy["none"]


def test_cifar10_85_cpu_never_backpropagates_into_the_whitening(make_cfg):
    """The recipe's CPU saving: with the whitening bias frozen from the start, nothing before
    the first 3x3 conv needs a gradient, so backward never reaches the whitened image."""
    cfg = make_cfg(
        [
            "experiment=cifar10_85_cpu",
            *SMALL,
            "trainer.max_epochs=1",
            "callbacks.rich_progress_bar=null",
            "test=false",
        ]
    )
    datamodule, module, trainer = build_run(cfg)
    needs_grad: list[bool] = []
    module.model.stem_act.register_forward_hook(
        lambda mod, args, out: needs_grad.append(out.requires_grad) if mod.training else None
    )
    first_conv = module.model.blocks[0].convs[0]
    before = first_conv.weight.detach().clone()
    trainer.fit(module, datamodule=datamodule)
    assert needs_grad and not any(needs_grad)
    assert torch.equal(module.model.stem.bias, torch.zeros_like(module.model.stem.bias))
    assert not torch.equal(first_conv.weight, before)  # the first conv itself still trains
