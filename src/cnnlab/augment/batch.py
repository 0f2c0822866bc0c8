"""Batched augmentation with tensor ops: one gather per batch, no per-sample Python.

Random draws come from a CPU `torch.Generator` (tiny: a few numbers per image) and are
moved to the batch's device, so results are identical on CPU and GPU for a given seed and
the generator state can be checkpointed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch


class Augment(Protocol):
    sample_transform: Callable[[np.ndarray], np.ndarray] | None

    def batch(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


class NoAugment:
    """The identity: for baselines and for measuring what augmentation buys."""

    sample_transform = None

    def batch(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return images


def random_flip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    flip = (torch.rand(images.shape[0], generator=generator) < p).to(images.device)
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def shifted_index(offsets: torch.Tensor, size: int, padding: int, mode: str) -> torch.Tensor:
    """Source pixel index for every (image, output position) of a translation by `offsets`.

    Reflect padding is folded into the index, so no padded copy of the batch is made;
    for zero padding, out-of-range positions come back as -1 and are masked by the caller.
    """
    index = offsets.view(-1, 1) - padding + torch.arange(size, device=offsets.device)
    if mode == "reflect":
        index = index.abs()
        return torch.where(index > size - 1, 2 * (size - 1) - index, index)
    return torch.where((index < 0) | (index > size - 1), -1, index)


def random_translate(
    images: torch.Tensor, generator: torch.Generator, padding: int, mode: str = "reflect"
) -> torch.Tensor:
    """Random crop of the padded image = a random shift of up to `padding` pixels each way."""
    n, _, h, w = images.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    rows = shifted_index(dy, h, padding, mode)  # n x h
    cols = shifted_index(dx, w, padding, mode)  # n x w
    batch_index = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channel_index = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    out = images[
        batch_index,
        channel_index,
        rows.clamp(min=0)[:, None, :, None],
        cols.clamp(min=0)[:, None, None, :],
    ]
    if mode != "reflect":
        outside = (rows < 0)[:, None, :, None] | (cols < 0)[:, None, None, :]
        out = out.masked_fill(outside, 0)
    return out


class FlipCrop:
    """The standard CIFAR recipe: horizontal flip + random crop with padding, batched."""

    sample_transform = None

    def __init__(self, flip: bool = True, padding: int = 4, pad_mode: str = "reflect") -> None:
        if padding < 0:
            raise ValueError(f"augment.padding must be >= 0 (got {padding})")
        if pad_mode not in ("reflect", "zeros"):
            raise ValueError(f"augment.pad_mode must be reflect or zeros (got {pad_mode})")
        self.flip = flip
        self.padding = padding
        self.pad_mode = pad_mode

    def batch(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.flip:
            images = random_flip(images, generator)
        if self.padding:
            images = random_translate(images, generator, self.padding, self.pad_mode)
        return images
