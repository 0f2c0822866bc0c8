"""Model zoo: shapes, gradients, parameter counts, norm options, branch attention, Hydra files."""

from __future__ import annotations

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from cnnlab.models.alexnet import AlexNet
from cnnlab.models.blocknet import BlockNet
from cnnlab.models.resnet import ResNet
from cnnlab.paths import CONFIG_DIR

CONF_MODEL = CONFIG_DIR / "model"

# (in_channels, image_size, num_classes): CIFAR-10-like and Fashion-MNIST-like inputs, with a
# class count other than 10 so that a hard-coded head would show.
SHAPES = [(3, 32, 10), (1, 28, 7)]


def _small_blocknet(**kw: object) -> BlockNet:
    """A BlockNet small enough for fast CPU tests but with every feature switched on."""
    opts: dict[str, object] = dict(
        num_blocks=3, channels=[8, 12, 16], kernel_sizes=[1, 3, 5], downsample_at=[1, 2]
    )
    opts.update(kw)
    return BlockNet(**opts)  # type: ignore[arg-type]


MODELS = {
    "alexnet": AlexNet,
    "blocknet": BlockNet,
    "resnet18": ResNet,
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize(("c", "size", "classes"), SHAPES)
def test_forward_backward(name: str, c: int, size: int, classes: int) -> None:
    model = MODELS[name](in_channels=c, num_classes=classes, image_size=size)
    assert model.input_shape == (c, size, size)
    x = torch.randn(2, c, size, size)
    out = model(x)
    assert out.shape == (2, classes)
    out.logsumexp(dim=1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reaches {pname}"
        assert torch.isfinite(p.grad).all(), pname


def test_resnet18_param_count() -> None:
    model = ResNet(in_channels=3, num_classes=10, image_size=32)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962


def test_resnet_family_depths() -> None:
    # depth = 2 (stem + fc) + 2 convs per BasicBlock; the 1x1 shortcuts are not counted.
    for depth in (10, 18, 34):
        model = ResNet(in_channels=3, num_classes=10, image_size=32, depth=depth)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert len(convs) + len(linears) == depth
    with pytest.raises(ValueError):
        ResNet(in_channels=3, num_classes=10, image_size=32, depth=50)
    with pytest.raises(ValueError):
        ResNet(in_channels=3, num_classes=10, image_size=32, norm="instance")  # type: ignore[arg-type]


def _norm_layers(model: nn.Module) -> list[nn.Module]:
    kinds = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
    return [m for m in model.modules() if isinstance(m, kinds)]


@pytest.mark.parametrize("norm", ["batch", "group", "layer", "none"])
def test_resnet_norm_option(norm: str) -> None:
    model = ResNet(in_channels=3, num_classes=10, image_size=32, norm=norm)  # type: ignore[arg-type]
    norms = _norm_layers(model)
    n_params = sum(p.numel() for p in model.parameters())
    # ResNet-18 has 17 + 3 shortcut norms = 20 norm layers over 4800 channels in total.
    if norm == "none":
        assert norms == []
        assert n_params == 11_173_962 - 2 * 4800
        return
    assert len(norms) == 20
    assert n_params == 11_173_962  # GN/LN have the same affine params as BN
    if norm == "batch":
        assert all(type(m) is nn.BatchNorm2d for m in norms)
    elif norm == "group":
        assert all(type(m) is nn.GroupNorm and m.num_groups == 32 for m in norms)
    else:  # layer == GroupNorm with a single group over (C, H, W)
        assert all(type(m) is nn.GroupNorm and m.num_groups == 1 for m in norms)


@pytest.mark.parametrize("norm", ["batch", "group", "layer", "none"])
def test_resnet_norm_behaviour(norm: str) -> None:
    """Only BatchNorm (in train mode) couples the samples of a batch."""
    model = ResNet(in_channels=3, num_classes=5, image_size=16, depth=10, width=8, norm=norm)  # type: ignore[arg-type]
    model.train()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        alone = model(x[:1])
        together = model(x)[:1]
    coupled = not torch.allclose(alone, together, atol=1e-5)
    assert coupled == (norm == "batch")


def test_blocknet_branch_weights() -> None:
    model = _small_blocknet(in_channels=3, num_classes=10, image_size=32)
    x = torch.randn(4, 3, 32, 32)
    x[1] = 3 * x[1] + 1  # a clearly different sample
    with torch.no_grad():
        weights = model.branch_weights(x)
    assert len(weights) == 3
    for a in weights:
        assert a.shape == (4, 3)
        assert (a > 0).all()
        torch.testing.assert_close(a.sum(dim=1), torch.ones(4))
        assert not torch.allclose(a[0], a[1], atol=1e-4), "weights must depend on the sample"
    # forward and forward_with_weights agree (eval: no dropout noise)
    model.eval()
    with torch.no_grad():
        logits, _ = model.forward_with_weights(x)
        torch.testing.assert_close(model(x), logits)


def test_blocknet_gate_changes_output() -> None:
    """The weighted sum really uses a: changing the gate bias changes the logits."""
    model = _small_blocknet(in_channels=1, num_classes=7, image_size=28).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        before = model(x)
        model.blocks[0].gate.bias.copy_(torch.tensor([5.0, -5.0, 0.0]))
        after = model(x)
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("downsample", ["stride", "maxpool"])
def test_blocknet_options(downsample: str) -> None:
    model = _small_blocknet(
        in_channels=3,
        num_classes=10,
        image_size=32,
        channels=8,
        downsample=downsample,
        batch_norm=False,
        hidden_features=[],
    )
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # stem at 32, then two halvings -> the last block runs at 8x8
    feats = torch.randn(2, 3, 32, 32)
    for block in model.blocks:
        feats = block(feats)
    assert feats.shape == (2, 8, 8, 8)


def test_blocknet_rejects_bad_config() -> None:
    base = dict(in_channels=3, num_classes=10, image_size=32)
    with pytest.raises(ValueError):
        BlockNet(**base, kernel_sizes=[3, 4])  # even kernels cannot be summed
    with pytest.raises(ValueError):
        BlockNet(**base, num_blocks=2, channels=[8, 8, 8])
    with pytest.raises(ValueError):
        BlockNet(**base, num_branches=2, kernel_sizes=[1, 3, 5])
    with pytest.raises(ValueError):
        BlockNet(**base, num_blocks=2, channels=8, downsample_at=[2])
    model = BlockNet(
        **base, num_blocks=1, channels=8, num_branches=4, kernel_sizes=[3], downsample_at=[]
    )
    assert model.num_branches == 4


@pytest.mark.parametrize("name", ["alexnet", "blocknet", "resnet18", "resnet"])
def test_hydra_option_files(name: str) -> None:
    """Each conf/model file instantiates the way the core does it."""
    cfg = OmegaConf.load(CONF_MODEL / f"{name}.yaml")
    assert str(cfg._target_).startswith("cnnlab.models.")
    for key in ("in_channels", "num_classes", "image_size"):
        assert key not in cfg, f"{key} is passed by the core, not set in the yaml"
    model = hydra.utils.instantiate(cfg, in_channels=1, num_classes=7, image_size=28)
    assert isinstance(model, nn.Module)
    assert model.input_shape == (1, 28, 28)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 28, 28)).shape == (1, 7)
