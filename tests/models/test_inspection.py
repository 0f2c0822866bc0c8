"""Inspection figures against hand-computed values and an independent gradient probe."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.alexnet import AlexNet
from cnnlab.models.blocknet import BlockNet
from cnnlab.models.resnet import ResNet
from cnnlab.reporting.inspection import (
    count_macs,
    format_layer_table,
    inspect_model,
    layer_table,
    receptive_field,
)

# ----------------------------------------------------------------------------- helpers


def conv(k: int, stride: int = 1, dilation: int = 1, c_in: int = 1, c_out: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, dilation=dilation, padding=dilation * (k // 2))


class Residual(nn.Module):
    """out = main(x) + shortcut(x): the receptive field is that of the larger path."""

    def __init__(self, main: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.main, self.shortcut = main, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class Gated(nn.Module):
    """A 3x3 conv scaled by a sigmoid gate computed from the global mean of its input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = conv(3)
        self.fc = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.fc(x.mean(dim=(2, 3))))
        return self.conv(x) * g[:, :, None, None]


class FunctionalNet(nn.Module):
    """Functional pooling and a flatten by view, as hand-written small CNNs often do."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = conv(3, c_out=4), conv(3, c_in=4, c_out=4)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.c1(x)), 2)  # 3 -> 4, jump 2
        x = F.max_pool2d(F.relu(self.c2(x)), 2)  # 4 + 2*2 = 8 -> 8 + 2 = 10, jump 4
        return self.fc(x.view(x.size(0), -1))


def grad_support(net: nn.Module, size: int = 64) -> int:
    """Independent check of a receptive field: side of the input region on which the centre
    output of the final map depends. Positive weights and a positive input make every
    path contribute (no cancellation, ReLUs pass), so the support is the full theoretical
    field; the input is large so that padding never cuts it. Only for MaxPool-free stacks
    (max-pool gradients reach one pixel per window)."""
    probe = copy.deepcopy(net).double()
    with torch.no_grad():
        for p in probe.parameters():
            p.fill_(0.1)
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = probe(x)
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    assert x.grad is not None
    rows = (x.grad[0].abs().sum(dim=(0, 2)) > 0).nonzero()
    return int(rows.max() - rows.min() + 1)


# ----------------------------------------------------------------------------- receptive field

# (name, stack, hand-computed receptive field). Rule: rf += (k - 1) * dilation * jump, then
# jump *= stride, starting from rf = 1, jump = 1.
STACKS = [
    # 1 + 2 + 2 + 2
    ("plain 3x3 x3", nn.Sequential(conv(3), nn.ReLU(), conv(3), nn.ReLU(), conv(3)), 7),
    # 1 + 2*1 (jump -> 2) + 2*2
    ("3x3 s2, 3x3", nn.Sequential(conv(3, 2), conv(3)), 7),
    # 1 + 2*1 (jump 2) + 2*2 (jump 4) + 2*4
    ("3x3 s2, 3x3 s2, 3x3", nn.Sequential(conv(3, 2), conv(3, 2), conv(3)), 15),
    # 1 + 2*1 + 2*2 (jump 4) + 2*4 + 2*4
    ("3x3 s2, 3x3 s2, 3x3, 3x3", nn.Sequential(conv(3, 2), conv(3, 2), conv(3), conv(3)), 23),
    # 1 + (3 - 1) * 2
    ("3x3 d2", nn.Sequential(conv(3, dilation=2)), 5),
    # 1 + (3 - 1) * 2 + (3 - 1) * 4
    ("3x3 d2, 3x3 d4", nn.Sequential(conv(3, dilation=2), conv(3, dilation=4)), 13),
    # 1 + 4 (5x5) + 4 * 1 (the 5x5 s2 sees jump 1) -> 9, jump 2; + 2 * 2
    ("5x5, 5x5 s2, 3x3", nn.Sequential(conv(5), conv(5, 2), conv(3)), 13),
    # residual: main 3x3 s2 + 3x3 = 1 + 2 + 4 = 7 beats the 1x1 s2 shortcut (1)
    (
        "residual, conv path larger",
        Residual(nn.Sequential(conv(3, 2), conv(3)), nn.Conv2d(1, 1, 1, stride=2)),
        7,
    ),
    # residual: shortcut 7x7 (7) beats main 3x3 (3); then a 3x3 after the sum: 7 + 2
    (
        "residual, shortcut larger",
        nn.Sequential(Residual(conv(3), conv(7)), conv(3)),
        9,
    ),
    # identity shortcut around two 3x3: 5; stacked twice: 9
    (
        "two identity residual blocks",
        nn.Sequential(*[Residual(nn.Sequential(conv(3), conv(3)), nn.Identity()) for _ in "ab"]),
        9,
    ),
    # gate from a global mean must not make it "the whole image": conv path only -> 3
    ("global-mean gate", Gated(), 3),
]

# Max-pool stacks (checked by hand only: the gradient probe cannot see through max-pools,
# and the AvgPool twin below is checked by it).
POOL_STACKS = [
    # 3x3 -> 3; pool 2 -> 3 + 1 = 4, jump 2; 3x3 -> 4 + 2*2 = 8; pool 2 -> 8 + 1*2 = 10
    ("conv/pool x2", lambda P: nn.Sequential(conv(3), P(2), conv(3), P(2)), 10),
    # 3x3 -> 3; pool 3 s2 -> 3 + 2 = 5, jump 2; 3x3 -> 5 + 4 = 9
    ("overlapping pool", lambda P: nn.Sequential(conv(3), P(3, 2), conv(3)), 9),
]


@pytest.mark.parametrize(("name", "net", "expected"), STACKS, ids=[s[0] for s in STACKS])
def test_receptive_field_stacks(name: str, net: nn.Module, expected: int) -> None:
    assert receptive_field(net, (1, 32, 32)) == expected
    if name != "global-mean gate":  # the gate does reach every pixel through the mean
        assert grad_support(net) == expected


@pytest.mark.parametrize(("name", "make", "expected"), POOL_STACKS, ids=[s[0] for s in POOL_STACKS])
def test_receptive_field_pools(name: str, make: object, expected: int) -> None:
    assert receptive_field(make(nn.MaxPool2d), (1, 32, 32)) == expected  # type: ignore[operator]
    avg = make(nn.AvgPool2d)  # type: ignore[operator]
    assert receptive_field(avg, (1, 32, 32)) == expected
    assert grad_support(avg) == expected


def test_receptive_field_functional_and_head() -> None:
    # the head (view + Linear) ends the spatial part; F.max_pool2d is modelled: 3, 4, 8, 10
    assert receptive_field(FunctionalNet(), (1, 32, 32)) == 10


def test_receptive_field_is_padding_independent() -> None:
    padded = nn.Sequential(conv(3), conv(3))
    valid = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3))
    assert receptive_field(padded, (1, 16, 16)) == receptive_field(valid, (1, 16, 16)) == 5


def test_receptive_field_rejects_unmodelled_geometry() -> None:
    with pytest.raises(NotImplementedError):
        receptive_field(nn.Sequential(conv(3), nn.Upsample(scale_factor=2)), (1, 8, 8))


def test_receptive_field_models() -> None:
    # ResNet-18 (CIFAR): rf = 1 + sum (k - 1) * jump over the longest (conv) path.
    #   stem 3x3 @ jump 1:                      +2            -> 3
    #   layer1, 4 convs @ 1:                    +4 * 2 = 8    -> 11
    #   layer2, s2 conv @ 1, 3 convs @ 2:       +2 + 3 * 4    -> 25
    #   layer3, s2 conv @ 2, 3 convs @ 4:       +4 + 3 * 8    -> 53
    #   layer4, s2 conv @ 4, 3 convs @ 8:       +8 + 3 * 16   -> 109
    # (the 1x1 shortcuts add nothing, so the residual adds take the conv path).
    resnet = ResNet(in_channels=3, num_classes=10, image_size=32)
    assert receptive_field(resnet) == 109
    # AlexNet: 5x5 -> 5; pool -> 6 (jump 2); 3x3 -> 10; pool -> 12 (jump 4);
    # three 3x3 -> 12 + 3 * 8 = 36; pool -> 36 + 4 = 40. The same on 28x28 (geometry only).
    assert receptive_field(AlexNet(in_channels=3, num_classes=10, image_size=32)) == 40
    assert receptive_field(AlexNet(in_channels=1, num_classes=10, image_size=28)) == 40
    # BlockNet default, largest branch 5x5, stride-2 blocks 2 and 4:
    # blocks 0, 1 @ jump 1: 1 + 4 + 4 = 9; block 2 (s2) @ 1: 13, jump 2; block 3: 21;
    # block 4 (s2) @ 2: 29, jump 4; block 5: 45. The branch gates add nothing.
    assert receptive_field(BlockNet(in_channels=3, num_classes=10, image_size=32)) == 45
    # With max-pool downsampling the pool (2x2) comes first in the block:
    # 1 + 4 + 4 = 9; pool @ 1 -> 10, jump 2; 5x5 @ 2 -> 18; block 3 -> 26;
    # pool @ 2 -> 28, jump 4; 5x5 @ 4 -> 44; block 5 -> 60.
    pooled = BlockNet(in_channels=3, num_classes=10, image_size=32, downsample="maxpool")
    assert receptive_field(pooled) == 60


# ----------------------------------------------------------------------------- MACs


def test_macs_tiny_stack() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8x8 out: 8*8 * 8 * 3*3*3       = 13,824
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, stride=2, padding=1, groups=2),  # 4x4: 16 * 4 * (8/2)*3*3 = 2,304
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),  # 64 * 5                    = 320
    )
    assert count_macs(net, (3, 8, 8)) == 13_824 + 2_304 + 320


def test_macs_resnet18() -> None:
    # Per conv: C_out * C_in * k * k * H_out * W_out on 32x32.
    stem = 64 * 3 * 9 * 32 * 32  # 1,769,472
    layer1 = 4 * 64 * 64 * 9 * 32 * 32  # 150,994,944
    # each later stage at half the side, double the width: one s2 conv, three convs,
    # one 1x1 shortcut; the three stages cost the same (C doubles, H*W quarters).
    stage = 128 * 64 * 9 * 16 * 16 + 3 * 128 * 128 * 9 * 16 * 16 + 128 * 64 * 16 * 16
    fc = 512 * 10
    model = ResNet(in_channels=3, num_classes=10, image_size=32)
    assert count_macs(model) == stem + layer1 + 3 * stage + fc == 555_422_720


def test_macs_do_not_change_training_mode() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout())
    net.train()
    net[2].eval()  # a submodule the caller froze on purpose
    count_macs(net, (1, 8, 8))
    assert net.training and net[1].training and not net[2].training


# ----------------------------------------------------------------------------- table / bundle


def test_layer_table_and_inspect_model() -> None:
    model = AlexNet(in_channels=1, num_classes=7, image_size=28)
    rows = layer_table(model)
    by_name = {r.name: r for r in rows}
    assert by_name["features.0"].type == "Conv2d"
    assert by_name["features.0"].out_shape == [1, 64, 28, 28]
    assert by_name["features"].out_shape == [1, 256, 3, 3]  # 28 -> 14 -> 7 -> 3
    assert by_name["classifier.7"].out_shape == [1, 7]
    assert by_name["classifier.2"].params == 256 * 3 * 3 * 1024 + 1024
    n_params = sum(p.numel() for p in model.parameters())
    assert by_name["features"].params + by_name["classifier"].params == n_params
    assert "features.0" in format_layer_table(rows)

    for p in model.features.parameters():
        p.requires_grad_(False)
    info = inspect_model(model)
    assert info["params"] == n_params
    assert info["trainable_params"] == by_name["classifier"].params
    assert info["receptive_field"] == 40
    assert info["macs"] == count_macs(model, (1, 28, 28)) > 0
    assert info["layers"] == rows
