"""AlexNet (Krizhevsky et al., 2012) scaled down for 32x32 and 28x28 inputs.

The ImageNet original starts with an 11x11 stride-4 conv that would turn a 32x32 image into
a 7x7 map before anything has been learned. Here the structure is kept (5 convs, three
max-pools, 3 FC layers with dropout) while the geometry is made to fit small images:
a 5x5 stride-1 first conv, 3x3 convs after it, and 2x2 pools, so the feature map is
``image_size // 8`` on a side (4x4 on CIFAR-10, 3x3 on Fashion-MNIST) when it is flattened.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["AlexNet"]


class AlexNet(nn.Module):
    """Five convs (three 2x2 max-pools in between) then three FC layers with dropout.

    Args:
        in_channels: image channels (3 for CIFAR-10, 1 for Fashion-MNIST).
        num_classes: number of logits.
        image_size: side of the square input; fixes the flattened feature size.
        widths: output channels of the five convs.
        hidden_features: width of the two hidden FC layers (4096 in the original; 1024 is
            plenty for a 4x4x256 feature map and keeps the head from dominating the params).
        dropout: dropout before each of the two hidden FC layers, as in the original.
        batch_norm: add BatchNorm after each conv. Off by default (the original has none and
            used local response normalisation, which is not worth reproducing).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        widths: Sequence[int] = (64, 192, 384, 256, 256),
        hidden_features: int = 1024,
        dropout: float = 0.5,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) != 5:
            raise ValueError(f"AlexNet has exactly 5 convs, got widths={widths}")
        if image_size < 8:
            raise ValueError(f"AlexNet pools three times by 2; image_size={image_size} is < 8")
        self.input_shape = (in_channels, image_size, image_size)

        def conv(c_in: int, c_out: int, k: int) -> list[nn.Module]:
            # Trick: a conv right before BatchNorm needs no bias (BN's shift replaces it).
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=not batch_norm)
            ]
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
            return layers

        c1, c2, c3, c4, c5 = widths
        self.features = nn.Sequential(
            *conv(in_channels, c1, 5),  # small-image stem: 5x5 stride 1 instead of 11x11 stride 4
            nn.MaxPool2d(2),
            *conv(c1, c2, 3),
            nn.MaxPool2d(2),
            *conv(c2, c3, 3),
            *conv(c3, c4, 3),
            *conv(c4, c5, 3),
            nn.MaxPool2d(2),
        )
        # Three floor-halvings of image_size equal one floor division by 8.
        side = image_size // 8
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c5 * side * side, hidden_features),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_features, hidden_features),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_features, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
