"""Models: plain `nn.Module`s with no training logic.

Contract for every model (one per option of the `model` config group):
- `__init__` takes keyword args `in_channels`, `num_classes`, `image_size` (filled in from
  the data module at instantiation) plus its own hyperparameters, all with defaults;
- it sets `self.input_shape = (in_channels, image_size, image_size)` for the inspector;
- `forward(images) -> logits`;
- optionally `init_from_data(images)` (`InitFromData`) when its init needs training images.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class InitFromData(Protocol):
    """Optional part of the contract: a model whose initialisation needs training images
    (airbench's whitening conv). The task module calls it once at fit start, before a resumed
    checkpoint's weights are restored, with normalised training images."""

    def init_from_data(self, images: torch.Tensor) -> None: ...
