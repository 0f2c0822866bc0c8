"""CIFAR-style ResNets (He et al., 2016) built from BasicBlocks.

"CIFAR-style" means the ImageNet stem (7x7 stride-2 conv + 3x3 max-pool, a 4x downsample)
is replaced by a single 3x3 stride-1 conv: on a 32x32 image the ImageNet stem would leave
an 8x8 map before the first residual stage. The four stages then run at 32, 16, 8 and 4
pixels (28, 14, 7, 4 on Fashion-MNIST), and a global average pool makes the head
independent of the input size.

With ``norm="batch"`` and 10 classes ``ResNet18`` has exactly 11,173,962 parameters, the
figure usually quoted for CIFAR ResNet-18.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

__all__ = ["NORMS", "BasicBlock", "ResNet", "make_norm"]

Norm = Literal["batch", "group", "layer", "none"]
NORMS: tuple[str, ...] = ("batch", "group", "layer", "none")

# Stage depths of the BasicBlock ResNets; deeper ones (50+) need Bottleneck blocks.
STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
}


def make_norm(norm: str, channels: int, groups: int = 32) -> nn.Module:
    """Build the normalisation layer named by ``norm`` for ``channels`` feature maps.

    ``group`` uses ``gcd(groups, channels)`` groups so that any width works (32 groups for
    the usual 64..512 widths, the Wu & He default). ``layer`` is GroupNorm with a single
    group: it normalises over (C, H, W) per sample, which is what "LayerNorm" means for
    conv features, with a per-channel affine like the other options. ``none`` is an
    Identity, so a model with it keeps the same module tree and is easy to compare.
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(math.gcd(groups, channels), channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


class BasicBlock(nn.Module):
    """Two 3x3 convs plus a shortcut; the first conv carries the stage's stride.

    When the block changes resolution or width, the shortcut is a 1x1 strided conv + norm
    ("option B" of the paper), otherwise it is the identity.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        # Trick: convs carry no bias; with BN/GN the norm's shift replaces it, and with
        # norm="none" we keep bias=False too so that the module tree and counts only
        # differ by the norm layers.
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = make_norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.norm2 = make_norm(norm, c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                make_norm(norm, c_out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """BasicBlock ResNet family for small images.

    Args:
        in_channels: image channels.
        num_classes: number of logits.
        image_size: side of the square input (only recorded: the global pool makes the
            network size-agnostic).
        depth: 10, 18 or 34 (BasicBlock depths: 2 + 2 * sum(stage blocks)).
        width: channels of the first stage; stage ``i`` has ``width * 2**i``.
        norm: ``batch`` | ``group`` | ``layer`` | ``none`` (see :func:`make_norm`).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        depth: int = 18,
        width: int = 64,
        norm: Norm = "batch",
    ) -> None:
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
        make_norm(norm, width)  # fail early on an unknown norm name
        self.input_shape = (in_channels, image_size, image_size)
        self.depth = depth
        self.norm = norm

        # CIFAR stem: one 3x3 stride-1 conv, no max-pool (see module docstring).
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False),
            make_norm(norm, width),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        c_in = width
        for i, n_blocks in enumerate(STAGE_BLOCKS[depth]):
            c_out = width * 2**i
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(c_in, c_out, stride, norm)]
            blocks += [BasicBlock(c_out, c_out, 1, norm) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # He init for ReLU nets (fan_out keeps the backward signal scale).
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))
