"""Augmentations: whole-batch tensor ops on the device, or per-sample albumentations (extra).

Every option of the `augment` config group is one class with the same two faces:
- `batch(images, generator)`: uint8 N x C x H x W batch on the device -> augmented batch;
- `sample_transform`: None, or a per-sample numpy transform run in DataLoader workers.
The DataModule asks which face is live; it never switches on the option's name.
"""

from cnnlab.augment.affine import FlipAffineCutout
from cnnlab.augment.albumentations_adapter import AlbumentationsRecipe
from cnnlab.augment.batch import Augment, FlipCrop, NoAugment

__all__ = ["AlbumentationsRecipe", "Augment", "FlipAffineCutout", "FlipCrop", "NoAugment"]
