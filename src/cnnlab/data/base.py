"""The shared image DataModule: whole splits as uint8 tensors, batches augmented on device.

Why this shape:
- Each split is one uint8 tensor (N x C x H x W), a quarter of the float size.
- The default (`loader: device`) is the fast path of `cnnlab.data.device`: each split is
  moved once to the training device (GPU memory on a GPU, RAM on CPU) and served as index
  batches already there; no DataLoader, no workers. `loader: dataloader` serves the same
  batches through a torch DataLoader by *index batches* (`__getitems__`), so it never runs
  Python per sample either.
- Augmentation, normalization and `channels_last` happen on the device, in
  `on_after_batch_transfer`, on whole uint8 batches.
- Per-sample augmentation (albumentations) is the exception: it runs in DataLoader workers
  on numpy images (`cnnlab.data.loaders`, the DataLoader adapter) and hands uint8 tensors to
  the same device-side normalization.

A dataset is a subclass that names its classes and shape and the two functions that find
and read its official files (`find_files`, `read_files`); nothing else differs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from cnnlab.augment import Augment, NoAugment
from cnnlab.data.device import DeviceBatches
from cnnlab.data.folds import fold_split
from cnnlab.data.loaders import (
    IndexBatchDataset,
    SampleTransformDataset,
    keep_batch,
    seed_sample_transform,
)
from cnnlab.data.sampling import EpochSampler, expect_exact_mid_epoch_resume
from cnnlab.data.split import Split
from cnnlab.errors import CnnlabError

LOADERS = ("device", "dataloader")


def check_train_sizes(train_sizes: Any, image_size: int) -> list[int]:
    """`data.train_sizes` as a list of sides in 0..image_size, or one line saying what is wrong."""
    if train_sizes is None:
        train_sizes = []
    sequence = isinstance(train_sizes, Sequence) and not isinstance(train_sizes, str)
    sizes = list(train_sizes) if sequence else [train_sizes]
    if not sequence or not all(
        isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= image_size for s in sizes
    ):
        raise CnnlabError(
            f"data.train_sizes must be image sides in 0..{image_size} per epoch, 0 = full size "
            f"(got {train_sizes}); e.g. data.train_sizes=[{image_size * 3 // 4},0]"
        )
    return sizes


class ImageDataModule(L.LightningDataModule):
    """One image dataset: its official files read into uint8 splits, served as device batches.

    Subclasses set the class attributes and `find_files` / `read_files`. Config values are
    checked before a DataModule is built (`cnnlab.training.validation`), not here.
    """

    name: ClassVar[str]
    classes: ClassVar[Sequence[str]]
    in_channels: ClassVar[int]
    image_size: ClassVar[int]
    train_size: ClassVar[int]
    official_mirror: ClassVar[str]

    @staticmethod
    def find_files(data_dir: Path, download: bool, mirror: str) -> Path:
        """The folder holding the official files (found, extracted or downloaded)."""
        raise NotImplementedError

    @staticmethod
    def read_files(folder: Path, train: bool) -> Split:
        """The official training or test split in `folder` as uint8 tensors."""
        raise NotImplementedError

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
        loader: str = "device",
        drop_last: bool = False,
        mirror: str | None = None,
        folds: int | None = None,
        fold: int | None = None,
        train_sizes: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir).expanduser()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.folds = folds  # k-fold cross-validation: val is fold `fold` (val_size unused)
        self.fold = fold
        self.num_workers = num_workers
        self.download = download
        self.channels_last = channels_last
        self.augment = augment or NoAugment()
        self.loader = loader
        self.drop_last = drop_last
        self.mirror = mirror or self.official_mirror
        self.train_sizes = check_train_sizes(train_sizes, self.image_size)
        # Splits already moved to a device, keyed by (split name, device): moved once per run.
        self._resident: dict[tuple[str, str], Split] = {}
        # Normalisation fused into one multiply-add: (x/255 - mean)/std = x*scale + shift.
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        self.seed = seed
        self._augment_generator = torch.Generator().manual_seed(seed)
        # Where a restored run continues: (epoch, samples of this rank's shard already trained).
        self._resume_position: tuple[int, int] | None = None
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
    def locate(self) -> Path:
        return self.find_files(self.data_dir, self.download, self.mirror)

    def prepare_data(self) -> None:
        self.locate()

    def load_split(self, train: bool) -> Split:
        return self.read_files(self.locate(), train)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.train_split is None:
            full = self.load_split(train=True)
            if self.folds:  # stratified, seeded: fold `fold` validates, the others train
                train, val = fold_split(
                    full.labels.numpy(), self.folds, self.fold or 0, self.split_seed
                )
                self.val_split = full.subset(torch.from_numpy(val))
                self.train_split = full.subset(torch.from_numpy(train))
            elif self.val_size >= len(full):
                raise CnnlabError(
                    f"data.val_size={self.val_size} leaves no training images ({len(full)} in all)"
                )
            else:
                # A seeded permutation of the training set: same seed, same validation images.
                order = torch.randperm(
                    len(full), generator=torch.Generator().manual_seed(self.split_seed)
                )
                self.val_split = full.subset(order[: self.val_size])
                self.train_split = full.subset(order[self.val_size :])
        if stage in (None, "test", "predict") and self.test_split is None:
            self.test_split = self.load_split(train=False)

    def test_on(self, split: str) -> None:
        """Make the test loader serve `split` (`cnnlab evaluate split=val|test`): the
        official test set, or the run's own seeded validation split."""
        if split not in ("test", "val"):
            raise CnnlabError(f"split={split} is not one of test, val")
        if split == "val":
            self.setup("fit")
            self.test_split = self.val_split  # trainer.test() finds it set and keeps it
        else:
            self.setup("test")

    def init_batch(self, size: int = 5000) -> torch.Tensor:
        """The first `size` training images, normalised: for data-dependent initialisation
        (airbench's whitening conv is computed from the patches of these)."""
        assert self.train_split is not None, "setup('fit') first"
        return self.normalize(self.train_split.images[:size])

    # -- loaders ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the model trains: the fast path keeps the data there."""
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _resident_split(self, name: str, split: Split) -> Split:
        key = (name, str(self.device))
        if key not in self._resident:
            self._resident[key] = Split(
                split.images.to(self.device, non_blocking=True),
                split.labels.to(self.device, non_blocking=True),
            )
        return self._resident[key]

    def _sampler(self, split: Split, train: bool) -> EpochSampler:
        """This rank's shard; the training order is a pure function of (seed, epoch).

        With `trainer.overfit_batches` the order is fixed, so every epoch trains on the same
        batches (Lightning turns shuffling off only for the DataLoaders it can see)."""
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        shuffle = train and not (trainer is not None and trainer.overfit_batches > 0)
        sampler = EpochSampler(split, seed=self.seed, shuffle=shuffle, rank=rank, world_size=world)
        if train and self._resume_position is not None:
            sampler.resume_at(*self._resume_position)
            self._resume_position = None
        return sampler

    def _loader_kwargs(self, split: Split, train: bool) -> dict[str, Any]:
        # An own generator per loader: creating an iterator then draws its base seed from it,
        # not from torch's global RNG (which dropout uses), so a resumed run stays in step.
        return {
            "sampler": self._sampler(split, train),
            "generator": torch.Generator().manual_seed(self.seed),
        }

    def _index_loader(
        self, name: str, split: Split, batch_size: int, shuffle: bool
    ) -> DeviceBatches | DataLoader:
        """Both index-batch loaders take their order from the same EpochSampler, so the fast
        path and the DataLoader path yield the same batches, resume exactly and shard alike."""
        train = name == "train"
        drop_last = self.drop_last and train
        if self.loader == "device":
            return DeviceBatches(
                self._resident_split(name, split),
                batch_size,
                sampler=self._sampler(split, train=shuffle),
                drop_last=drop_last,
                with_index=train,
            )
        return DataLoader(
            IndexBatchDataset(split, with_index=train),
            batch_size=batch_size,
            drop_last=drop_last,
            collate_fn=keep_batch,
            **self._loader_kwargs(split, train=shuffle),
        )

    def train_dataloader(self) -> DeviceBatches | DataLoader:
        assert self.train_split is not None, "setup('fit') first"
        if self.augment.sample_transform is None:
            return self._index_loader("train", self.train_split, self.batch_size, shuffle=True)
        return DataLoader(
            SampleTransformDataset(self.train_split, self.augment),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=seed_sample_transform,
            **self._loader_kwargs(self.train_split, train=True),
        )

    def val_dataloader(self) -> DeviceBatches | DataLoader:
        assert self.val_split is not None, "setup('fit') first"
        return self._index_loader("val", self.val_split, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DeviceBatches | DataLoader:
        assert self.test_split is not None, "setup('test') first"
        return self._index_loader("test", self.test_split, self.eval_batch_size, shuffle=False)

    # -- on-device batch work --------------------------------------------------------------
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> normalised float batch (in channels_last when asked)."""
        if self._scale.device != images.device:  # moved once, not per batch (no GPU stall)
            self._scale, self._shift = self._scale.to(images.device), self._shift.to(images.device)
        out = images.float().mul_(self._scale).add_(self._shift)
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, labels, *index = batch  # training batches also carry dataset indices
        if self.trainer is None or not self.trainer.training:
            return self.normalize(images), labels
        epoch = self.trainer.current_epoch
        images = self.augment.batch(
            images, self._augment_generator, index=index[0] if index else None, epoch=epoch
        )
        return self.resize(self.normalize(images), self.train_side(epoch)), labels

    # -- progressive resizing --------------------------------------------------------------
    def train_side(self, epoch: int) -> int:
        """The side of epoch `epoch`'s training images: `train_sizes[epoch]`, the last entry
        for later epochs; 0 (or no `train_sizes`) is the images' own size."""
        if not self.train_sizes:
            return 0
        return self.train_sizes[min(epoch, len(self.train_sizes) - 1)]

    def resize(self, images: torch.Tensor, size: int) -> torch.Tensor:
        """A normalised batch shrunk to size x size (antialiased bilinear); 0: unchanged.

        Smaller images make cheaper early epochs; the last epochs at the full size settle the
        filters and the BatchNorm statistics at the scale the test set is seen at.
        """
        if size == 0 or tuple(images.shape[-2:]) == (size, size):
            return images
        out = F.interpolate(
            images, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints: a resumed run continues the same augmentation stream and order."""
        state: dict[str, Any] = {"augment_generator": self._augment_generator.get_state()}
        if self.trainer is not None and self.trainer.state.fn == "fit":
            state["train_position"] = self._train_position()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "augment_generator" in state_dict:
            self._augment_generator.set_state(state_dict["augment_generator"])
        fitting = self.trainer is not None and self.trainer.state.fn == "fit"
        if "train_position" in state_dict and fitting:
            epoch, samples_done = state_dict["train_position"]
            self._resume_position = (int(epoch), int(samples_done))
            expect_exact_mid_epoch_resume()

    def _train_position(self) -> tuple[int, int]:
        """(epoch, samples of this rank's shard done) of the next training batch (loop counters).

        A checkpoint may be written mid-epoch (every N steps, SIGTERM) or once an epoch's batches
        are all done (validation end, epoch end); the latter continues at the next epoch's start.
        """
        loop = self.trainer.fit_loop
        epochs, batches = loop.epoch_progress.current, loop.epoch_loop.batch_progress.current
        in_epoch = epochs.processed < epochs.started
        if in_epoch and batches.processed < self.trainer.num_training_batches:
            return epochs.processed, batches.processed * self.batch_size
        return epochs.processed + int(in_epoch), 0
