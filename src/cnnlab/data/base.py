"""The shared image DataModule: whole splits as uint8 tensors, batches augmented on device.

Why this shape:
- Each split is one uint8 tensor (N x C x H x W), a quarter of the float size. Batches are
  cut by *index batches* (`__getitems__`), so the default path never runs Python per sample.
- Batches travel to the device as uint8; augmentation, normalization and `channels_last`
  happen there, in `on_after_batch_transfer`, on whole batches.
- Per-sample augmentation (albumentations) is the exception: it runs in DataLoader workers
  on numpy images and hands uint8 tensors to the same device-side normalization.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cnnlab.augment import Augment, NoAugment
from cnnlab.errors import CnnlabError


@dataclass
class Split:
    """Images (uint8, N x C x H x W) and their int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> Split:
        return Split(self.images[indices], self.labels[indices])


class IndexBatchDataset(Dataset):
    """A split served a whole batch at a time: one tensor index per batch, no per-sample loop."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split.images[index], self.split.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.split.images[index], self.split.labels[index]


def keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate for IndexBatchDataset: the batch is already stacked."""
    return batch


class SampleTransformDataset(Dataset):
    """A split whose training images go through a per-sample numpy transform (albumentations)."""

    def __init__(self, split: Split, augment: Augment) -> None:
        self.split = split
        self.augment = augment

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.split.images[index].permute(1, 2, 0).numpy()  # HWC for albumentations
        out = self.augment.sample_transform(image)
        if out.ndim == 2:  # single-channel images may come back without the channel axis
            out = out[..., None]
        return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1), self.split.labels[index]


def seed_sample_transform(worker_id: int) -> None:
    """Give each worker its own augmentation stream, derived from torch's per-worker seed."""
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset.augment, "reseed"):
        info.dataset.augment.reseed(torch.initial_seed() % 2**32)


class ImageDataModule(L.LightningDataModule):
    """Base for one image dataset family. Subclasses set the class attributes and `load_split`."""

    name: ClassVar[str]
    classes: ClassVar[Sequence[str]]
    in_channels: ClassVar[int]
    image_size: ClassVar[int]
    train_size: ClassVar[int]

    def __init__(
        self,
        data_dir: str | os.PathLike,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_size: int = 5000,
        split_seed: int = 0,
        num_workers: int = 0,
        download: bool = False,
        channels_last: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise CnnlabError(f"data.batch_size must be >= 1 (got {batch_size})")
        if not 1 <= val_size < self.train_size:
            raise CnnlabError(
                f"data.val_size must be between 1 and {self.train_size - 1} for {self.name} "
                f"(got {val_size}): validation is split from the {self.train_size} training images"
            )
        if len(mean) != self.in_channels or len(std) != self.in_channels or min(std) <= 0:
            raise CnnlabError(
                f"data.mean/data.std need {self.in_channels} values with std > 0 for {self.name}"
            )
        if num_workers < 0:
            raise CnnlabError(f"data.num_workers must be >= 0 (got {num_workers})")
        self.data_dir = Path(data_dir).expanduser()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.download = download
        self.channels_last = channels_last
        self.augment = augment or NoAugment()
        # Normalisation fused into one multiply-add: (x/255 - mean)/std = x*scale + shift.
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        self._augment_generator = torch.Generator().manual_seed(seed)
        self.train_split: Split | None = None
        self.val_split: Split | None = None
        self.test_split: Split | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def model_kwargs(self) -> dict[str, int]:
        """What every model needs from the data: the input shape and the class count."""
        return {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "image_size": self.image_size,
        }

    # -- reading ---------------------------------------------------------------------------
    def load_split(self, train: bool) -> Split:
        """The official training (50k/60k) or test (10k) split as uint8 tensors."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.train_split is None:
            full = self.load_split(train=True)
            if self.val_size >= len(full):
                raise CnnlabError(
                    f"data.val_size={self.val_size} leaves no training images ({len(full)} in all)"
                )
            # A seeded permutation of the training set: same seed, same validation images.
            order = torch.randperm(len(full), generator=torch.Generator().manual_seed(self.split_seed))
            self.val_split = full.subset(order[: self.val_size])
            self.train_split = full.subset(order[self.val_size :])
        if stage in (None, "test", "predict") and self.test_split is None:
            self.test_split = self.load_split(train=False)

    # -- loaders ---------------------------------------------------------------------------
    def _index_loader(self, split: Split, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            IndexBatchDataset(split), batch_size=batch_size, shuffle=shuffle, collate_fn=keep_batch
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_split is not None, "setup('fit') first"
        if self.augment.sample_transform is None:
            return self._index_loader(self.train_split, self.batch_size, shuffle=True)
        return DataLoader(
            SampleTransformDataset(self.train_split, self.augment),
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=seed_sample_transform,
        )

    def val_dataloader(self) -> DataLoader:
        assert self.val_split is not None, "setup('fit') first"
        return self._index_loader(self.val_split, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        assert self.test_split is not None, "setup('test') first"
        return self._index_loader(self.test_split, self.eval_batch_size, shuffle=False)

    # -- on-device batch work --------------------------------------------------------------
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> normalised float batch (in channels_last when asked)."""
        scale, shift = self._scale.to(images.device), self._shift.to(images.device)
        out = images.float().mul_(scale).add_(shift)
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, labels = batch
        if self.trainer is not None and self.trainer.training:
            images = self.augment.batch(images, self._augment_generator)
        return self.normalize(images), labels

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints so a resumed run continues the same augmentation stream."""
        return {"augment_generator": self._augment_generator.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "augment_generator" in state_dict:
            self._augment_generator.set_state(state_dict["augment_generator"])
