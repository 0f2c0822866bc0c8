"""A dataset split as two tensors: what every image reader returns and every loader serves."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    """Images (uint8, N x C x H x W) and their int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> Split:
        return Split(self.images[indices], self.labels[indices])
