"""CIFAR10Netv2: a parameter-budgeted (181,942 on CIFAR-10) all-convolutional net.

No MaxPool anywhere: resolution drops through stride-2 3x3 convs in the transitions, and
receptive field grows cheaply through a dilated conv and a depthwise-separable conv in
block 3. Every conv is bias-free (BatchNorm's shift makes a bias redundant) and followed by
BatchNorm, ReLU and Dropout.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU(nn.Sequential):
    """conv (no bias) -> BatchNorm -> ReLU -> Dropout."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        dropout: float = 0.1,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )


class DepthwiseSeparable(nn.Sequential):
    """Depthwise 3x3 (one filter per channel) then pointwise 1x1: ~9x fewer weights."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__(
            ConvBNReLU(channels, channels, 3, groups=channels, dropout=dropout),
            ConvBNReLU(channels, channels, 1, dropout=dropout),
        )


class CIFAR10Netv2(nn.Module):
    def __init__(
        self, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.input_shape = (in_channels, image_size, image_size)
        c1, c2, c3 = 16, 32, 52
        d = dropout
        self.features = nn.Sequential(
            # Block 1: three 3x3 convs at 16 channels.
            ConvBNReLU(in_channels, c1, dropout=d),
            ConvBNReLU(c1, c1, dropout=d),
            ConvBNReLU(c1, c1, dropout=d),
            # Transition 1: 1x1 widens, stride-2 3x3 halves the resolution (instead of MaxPool).
            ConvBNReLU(c1, c2, 1, dropout=d),
            ConvBNReLU(c2, c2, stride=2, dropout=d),
            # Block 2.
            ConvBNReLU(c2, c2, dropout=d),
            ConvBNReLU(c2, c2, dropout=d),
            ConvBNReLU(c2, c2, dropout=d),
            # Transition 2.
            ConvBNReLU(c2, c3, 1, dropout=d),
            ConvBNReLU(c3, c3, stride=2, dropout=d),
            # Block 3: plain, dilated (RF +4 for the price of a 3x3), depthwise-separable.
            ConvBNReLU(c3, c3, dropout=d),
            ConvBNReLU(c3, c3, dilation=2, dropout=d),
            DepthwiseSeparable(c3, dropout=d),
            # Transition 3.
            ConvBNReLU(c3, c3, 1, dropout=d),
            ConvBNReLU(c3, c3, stride=2, dropout=d),
            # Block 4: one 3x3 then three cheap 1x1 channel mixers.
            ConvBNReLU(c3, c3, dropout=d),
            ConvBNReLU(c3, c3, 1, dropout=d),
            ConvBNReLU(c3, c3, 1, dropout=d),
            ConvBNReLU(c3, c3, 1, dropout=d),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c3, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.features(images)), 1))
