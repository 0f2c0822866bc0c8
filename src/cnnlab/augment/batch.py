"""Batched augmentation with tensor ops: one gather per batch, no per-sample Python.

Random draws come from a CPU `torch.Generator` (tiny: a few numbers per image) and are
moved to the batch's device, so results are identical on CPU and GPU for a given seed and
the generator state can be checkpointed.

Every op works on uint8 N x C x H x W batches (a quarter of the float traffic) before the
DataModule's fused normalisation. `batch()` receives, besides the images, the dataset index
of each image and the epoch, because airbench's *alternating flip* is a function of both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch


class Augment(Protocol):
    sample_transform: Callable[[np.ndarray], np.ndarray] | None

    def batch(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        index: torch.Tensor | None = None,
        epoch: int = 0,
    ) -> torch.Tensor: ...


class NoAugment:
    """The identity: for baselines and for measuring what augmentation buys."""

    sample_transform = None

    def batch(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        index: torch.Tensor | None = None,
        epoch: int = 0,
    ) -> torch.Tensor:
        return images


def to_device(draws: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a few random draws to the batch's device without stalling a GPU.

    A copy from ordinary (pageable) host memory waits until the GPU has finished the work
    queued before it, which would serialise every training step with its augmentation;
    from pinned memory the copy is queued like a kernel.
    """
    if draws.device == device:
        return draws
    if device.type == "cuda":
        return draws.pin_memory().to(device, non_blocking=True)
    return draws.to(device)


def random_flip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    flip = to_device(torch.rand(images.shape[0], generator=generator) < p, images.device)
    return flip_where(images, flip)


def flip_where(images: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror left-right exactly the images whose entry in the bool vector `flip` is set."""
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def base_flip(index: torch.Tensor, salt: int) -> torch.Tensor:
    """A fixed pseudo-random bit per dataset index (about half of them set).

    Stateless on purpose: a resumed run, or the same image met in another batch, gets the same
    bit without storing a table. Fibonacci hashing of (index + salt); bit 15 of the product is
    well mixed for the index ranges of image datasets (products stay below 2**63).
    """
    mixed = ((index.long() + salt) * 0x9E3779B1) & 0xFFFFFFFF
    return ((mixed >> 15) & 1).bool()


def alternating_flip(
    images: torch.Tensor, index: torch.Tensor, epoch: int, salt: int = 0
) -> torch.Tensor:
    """airbench's alternating flip: a fixed random half is mirrored on even epochs, the other
    half on odd epochs, so every image is seen both ways within any two consecutive epochs
    (random flipping leaves ~25% of images unmirrored, or always mirrored, over two epochs)."""
    flip = base_flip(to_device(index, images.device), salt) ^ bool(epoch % 2)
    return flip_where(images, flip)


def source_index(
    offsets: torch.Tensor, size: int, padding: int, mode: str, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Source pixel index for every (image, output position) of a crop at `offsets` of the
    image padded by `padding` (offsets in 0..2*padding; `padding` = no shift).

    Padding is folded into the index, so no padded copy of the batch is made: reflect
    padding mirrors the index at the borders; for zero padding, out-of-range positions come
    back as -1 for the caller to blank. `flip` (bool per image) mirrors the source first,
    which folds a horizontal flip into the same gather.
    """
    index = offsets.view(-1, 1) - padding + torch.arange(size, device=offsets.device)
    if mode == "reflect":
        index = index.abs()
        index = torch.where(index > size - 1, 2 * (size - 1) - index, index)
    else:
        index = torch.where((index < 0) | (index > size - 1), -1, index)
    if flip is not None:
        index = torch.where(flip.view(-1, 1) & (index >= 0), size - 1 - index, index)
    return index


def translate(
    images: torch.Tensor,
    dy: torch.Tensor,
    dx: torch.Tensor,
    padding: int,
    mode: str = "reflect",
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Crop each image of the padded batch at its own (dy, dx): one gather for the batch.

    Equal, image by image, to `pad(flip(image) if flip else image)[:, dy:dy+H, dx:dx+W]`.
    The gather reads through one H*W index per image (expanded over channels), the cheapest
    of the batched formulations measured on CPU (bench/augment.py).
    """
    n, c, h, w = images.shape
    flip = to_device(flip, images.device) if flip is not None else None
    rows = source_index(to_device(dy, images.device), h, padding, mode)  # n x h
    cols = source_index(to_device(dx, images.device), w, padding, mode, flip)  # n x w
    flat = rows.clamp(min=0)[:, :, None] * w + cols.clamp(min=0)[:, None, :]  # n x h x w
    index = flat.view(n, 1, h * w).expand(n, c, h * w)
    out = images.reshape(n, c, h * w).gather(2, index).view(n, c, h, w)
    if mode != "reflect":
        outside = (rows < 0)[:, None, :, None] | (cols < 0)[:, None, None, :]
        out = out.masked_fill(outside, 0)
    return out


def random_shifts(n: int, padding: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Crop offsets (dy, dx), each uniform in 0..2*padding."""
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    return dy, dx


def random_translate(
    images: torch.Tensor, generator: torch.Generator, padding: int, mode: str = "reflect"
) -> torch.Tensor:
    """Random crop of the padded image = a random shift of up to `padding` pixels each way."""
    dy, dx = random_shifts(images.shape[0], padding, generator)
    return translate(images, dy, dx, padding, mode)


def cutout(
    images: torch.Tensor,
    corner_y: torch.Tensor,
    corner_x: torch.Tensor,
    size: int,
    fill: torch.Tensor | int = 0,
    inplace: bool = False,
) -> torch.Tensor:
    """Blank the size x size square at (corner_y, corner_x) of each image with `fill`.

    The squares must lie inside the images. `fill` is a scalar or a per-channel uint8
    tensor; filling with the dataset mean makes the hole zero after normalisation, as
    airbench (which cuts out normalised images) does. One scatter writes only the holes
    (4x faster on CPU than masking whole images); `inplace` skips the copy for a batch the
    caller owns.
    """
    n, c, h, w = images.shape
    out = images if inplace else images.clone()
    side = torch.arange(size, device=images.device)
    rows = to_device(corner_y, images.device).view(-1, 1, 1) + side.view(1, -1, 1)
    cols = to_device(corner_x, images.device).view(-1, 1, 1) + side.view(1, 1, -1)
    holes = (rows * w + cols).view(n, 1, size * size).expand(n, c, size * size)
    if isinstance(fill, torch.Tensor):
        values = to_device(fill.to(images.dtype), images.device).reshape(1, -1, 1)
    else:
        values = torch.full((1, 1, 1), fill, dtype=images.dtype, device=images.device)
    out.view(n, c, h * w).scatter_(2, holes, values.expand(n, c, size * size))
    return out


def random_corners(
    n: int, size: int, h: int, w: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners of size x size squares placed uniformly inside h x w images."""
    corner_y = torch.randint(0, h - size + 1, (n,), generator=generator)
    corner_x = torch.randint(0, w - size + 1, (n,), generator=generator)
    return corner_y, corner_x


def random_cutout(
    images: torch.Tensor,
    generator: torch.Generator,
    size: int,
    fill: torch.Tensor | int = 0,
    inplace: bool = False,
) -> torch.Tensor:
    """Cutout of one square per image, placed uniformly so that it lies inside the image."""
    n, _, h, w = images.shape
    size = min(size, h, w)
    corner_y, corner_x = random_corners(n, size, h, w, generator)
    return cutout(images, corner_y, corner_x, size, fill, inplace)


FLIP_MODES = ("none", "random", "alternating")


class FlipCrop:
    """Batched flip + random crop with padding (= translate) + optional cutout.

    The standard CIFAR recipe by default; airbench's recipes are the same class with
    `flip=alternating` (airbench94: padding 2) and `cutout=12` (airbench96: padding 4).
    """

    sample_transform = None

    def __init__(
        self,
        flip: bool | str = True,
        padding: int = 4,
        pad_mode: str = "reflect",
        cutout: int = 0,
        cutout_fill: float | Sequence[float] = 0.0,
        seed: int = 0,
    ) -> None:
        flip = {True: "random", False: "none"}.get(flip, flip) if isinstance(flip, bool) else flip
        if flip not in FLIP_MODES:
            raise ValueError(f"augment.flip must be one of {', '.join(FLIP_MODES)} (got {flip})")
        if padding < 0:
            raise ValueError(f"augment.padding must be >= 0 (got {padding})")
        if pad_mode not in ("reflect", "zeros"):
            raise ValueError(f"augment.pad_mode must be reflect or zeros (got {pad_mode})")
        if cutout < 0:
            raise ValueError(f"augment.cutout must be >= 0 (got {cutout})")
        fills = [float(cutout_fill)] if isinstance(cutout_fill, (int, float)) else list(cutout_fill)
        if not all(0.0 <= f <= 1.0 for f in fills):
            raise ValueError(f"augment.cutout_fill must be fractions in [0, 1] (got {cutout_fill})")
        self.flip = flip
        self.padding = padding
        self.pad_mode = pad_mode
        self.cutout = cutout
        self.cutout_fill = torch.tensor([round(255 * f) for f in fills], dtype=torch.uint8)
        self.seed = seed

    def batch(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        index: torch.Tensor | None = None,
        epoch: int = 0,
    ) -> torch.Tensor:
        n = images.shape[0]
        flip = None
        if self.flip == "alternating" and index is not None:
            flip = base_flip(index, self.seed) ^ bool(epoch % 2)
        elif self.flip != "none":  # alternating without indices (custom loaders): random
            flip = torch.rand(n, generator=generator) < 0.5
        owned = False  # whether `images` is a new tensor (then cutout may write in place)
        if self.padding:  # flip folded into the translation's gather: one pass
            dy, dx = random_shifts(n, self.padding, generator)
            images, owned = translate(images, dy, dx, self.padding, self.pad_mode, flip), True
        elif flip is not None:
            images, owned = flip_where(images, to_device(flip, images.device)), True
        if self.cutout:
            images = random_cutout(images, generator, self.cutout, self.cutout_fill, owned)
        return images
