"""The classic small baseline: two conv+pool stages, three fully connected layers."""

from __future__ import annotations

import torch
from torch import nn


class SimpleCNN(nn.Module):
    """LeNet-shaped: conv5x5 -> pool -> conv5x5 -> pool -> FC -> FC -> FC.

    Widths are config so the same baseline can be the tutorial-sized net (6/16) or a
    slightly wider one that learns Fashion-MNIST to ~88% in one epoch (32/64, default).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, int] = (32, 64),
        hidden: tuple[int, int] = (120, 84),
        kernel_size: int = 5,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_shape = (in_channels, image_size, image_size)
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        # Valid convolutions shrink the map; its side after both stages sizes the first FC.
        side = ((image_size - kernel_size + 1) // 2 - kernel_size + 1) // 2
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for kernel_size {kernel_size}")
        h1, h2 = hidden
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * side * side, h1),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(h1, h2),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(h2, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))
