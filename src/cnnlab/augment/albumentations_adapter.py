"""The stage-3 augmentation recipe as albumentations, run per sample in DataLoader workers.

HorizontalFlip p=0.5; Affine shift ±10%, scale ±10%, rotate ±15°; CoarseDropout of one
16x16 hole filled with 0, p=0.3. albumentations (and OpenCV with it) is the optional extra
`albumentations`, imported only when this recipe is built; `FlipAffineCutout` is the same
recipe batched on the device without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cnnlab.errors import CnnlabError


class AlbumentationsRecipe:
    """Per-sample transform; `batch` is the identity since the work happened in the workers."""

    def __init__(
        self,
        flip_p: float = 0.5,
        shift: float = 0.1,
        scale: float = 0.1,
        rotate: float = 15.0,
        affine_p: float = 0.5,
        dropout_size: int = 16,
        dropout_p: float = 0.3,
        seed: int = 0,
    ) -> None:
        try:
            import albumentations as A
        except ImportError:
            raise CnnlabError(
                "augment=albumentations needs the 'albumentations' extra: "
                "pip install 'cnnlab[albumentations]' (augment=flip_affine_cutout is the same "
                "recipe batched, without it)"
            ) from None

        self.pipeline = A.Compose(
            [
                A.HorizontalFlip(p=flip_p),
                A.Affine(
                    translate_percent=(-shift, shift),
                    scale=(1 - scale, 1 + scale),
                    rotate=(-rotate, rotate),
                    fill=0,
                    p=affine_p,
                ),
                A.CoarseDropout(
                    num_holes_range=(1, 1),
                    hole_height_range=(dropout_size, dropout_size),
                    hole_width_range=(dropout_size, dropout_size),
                    fill=0,
                    p=dropout_p,
                ),
            ],
            seed=seed,
        )

    def sample_transform(self, image: np.ndarray) -> np.ndarray:
        return self.pipeline(image=image)["image"]

    def reseed(self, seed: int) -> None:
        """Called in each DataLoader worker so workers do not repeat each other's draws."""
        self.pipeline.set_random_seed(seed)

    def batch(
        self, images: torch.Tensor, generator: Any, index: Any = None, epoch: int = 0
    ) -> torch.Tensor:
        return images
