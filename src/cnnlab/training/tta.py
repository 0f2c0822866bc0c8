"""Test-time augmentation: average the logits of a few label-preserving views of each image.

airbench's two levels, as `module.tta`:
- `flip`: the image and its mirror image, weighted 1/2 each;
- `flip_translate`: `flip` (weight 1/2) plus `flip` of the image shifted one pixel up-left
  and one pixel down-right (reflect padding; weight 1/4 each): 6 forward passes;
- `none`: one pass.

The views are the symmetries the training augmentation already taught the net (mirror,
small translation), so averaging them cancels part of the prediction noise. Views run as
separate forward passes of the eval batch, so memory stays that of one batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TTA_MODES = ("none", "flip", "flip_translate")


def mirrored_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Mean logits of the image and its left-right mirror."""
    return 0.5 * (model(images) + model(images.flip(-1)))


def shifted(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """The batch translated by (dy, dx) pixels (|d| <= 1), reflect-padded at the borders."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    return padded[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w].contiguous(
        memory_format=torch.channels_last
        if images.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )


def tta_logits(model: nn.Module, images: torch.Tensor, mode: str = "none") -> torch.Tensor:
    """The model's logits for a normalised float batch under test-time augmentation `mode`."""
    if mode == "none":
        return model(images)
    if mode == "flip":
        return mirrored_logits(model, images)
    if mode == "flip_translate":
        translated = 0.5 * (
            mirrored_logits(model, shifted(images, 1, 1))
            + mirrored_logits(model, shifted(images, -1, -1))
        )
        return 0.5 * mirrored_logits(model, images) + 0.5 * translated
    raise ValueError(f"module.tta must be one of {', '.join(TTA_MODES)} (got {mode})")
