"""CIFAR-10 from its canonical "python version" files, without torchvision.

Layout searched, in order, under the data dir:
1. `cifar-10-batches-py/` (data_batch_1..5, test_batch): read directly;
2. `cifar-10-python.tar.gz`: md5-checked against the official sum, extracted once;
3. with `download=True`: the official archive is downloaded, checked and extracted.

The batch files are validated by structure (keys, shapes, dtype, labels), not md5: copies
rebuilt from the images are legitimate but not byte-identical to the release.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.base import ImageDataModule
from cnnlab.data.files import download, extract_tar, verify_md5
from cnnlab.data.split import Split
from cnnlab.errors import CnnlabError

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_MIRROR = "https://www.cs.toronto.edu/~kriz"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch as (uint8 N x 3 x 32 x 32 images, int64 labels)."""
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
    except FileNotFoundError:
        raise CnnlabError(
            f"{path}: missing CIFAR-10 batch file; the folder is incomplete"
        ) from None
    except Exception as err:  # unpickling raises many types on truncated/corrupt input
        raise CnnlabError(
            f"{path}: corrupt or truncated CIFAR-10 batch ({type(err).__name__}); "
            "replace the file (or delete the folder and use data.download=true)"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise CnnlabError(f"{path}: not a CIFAR-10 batch (expected a dict with data and labels)")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CnnlabError(f"{path}: data is {data.dtype} {data.shape}, expected uint8 N x 3072")
    if labels.shape != (data.shape[0],) or labels.min() < 0 or labels.max() >= len(CLASSES):
        raise CnnlabError(f"{path}: labels do not match the images or fall outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def locate(data_dir: Path, download_missing: bool, mirror: str = OFFICIAL_MIRROR) -> Path:
    """The `cifar-10-batches-py` folder, extracting or downloading the archive if needed."""
    folder = data_dir / FOLDER
    if folder.is_dir():
        return folder
    archive = data_dir / ARCHIVE
    if archive.is_file():
        verify_md5(archive, ARCHIVE_MD5)
        return extract_tar(archive, data_dir, FOLDER)
    if download_missing:
        download(f"{mirror.rstrip('/')}/{ARCHIVE}", archive, ARCHIVE_MD5)
        return extract_tar(archive, data_dir, FOLDER)
    raise CnnlabError(
        f"CIFAR-10 not found: searched {folder}/ and {archive}; fix: set CNNLAB_DATA_DIR "
        "(or paths.data_dir=...) to a folder holding cifar-10-batches-py/, "
        "or add data.download=true"
    )


def load_cifar10(folder: Path, train: bool) -> Split:
    parts = [read_batch(folder / name) for name in (TRAIN_FILES if train else TEST_FILES)]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Split(torch.from_numpy(images), torch.from_numpy(labels))


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10: 50k train (validation split from it) and the official 10k test set."""

    name = "cifar10"
    classes = CLASSES
    in_channels = 3
    image_size = 32
    train_size = 50_000
    official_mirror = OFFICIAL_MIRROR
    find_files = staticmethod(locate)
    read_files = staticmethod(load_cifar10)
