"""Fashion-MNIST from its canonical IDX files, without torchvision.

Folders searched, in order: `<data_dir>/FashionMNIST/raw/` (torchvision's layout) and
Debian's `/usr/share/datasets/fashion-mnist/` (package `dataset-fashion-mnist`). Files may
be gzipped or plain. With `download=True` the official files are fetched into the first
folder and md5-checked. Local files are validated by structure (IDX magic, counts,
shapes): Debian's gzip wrappers differ from the official ones, so their md5 sums do too.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.base import ImageDataModule
from cnnlab.data.files import download
from cnnlab.data.split import Split
from cnnlab.errors import CnnlabError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
OFFICIAL_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
# (images file, labels file) per split, with the official md5 of each gzipped file.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12e480ee83cd310",
}
IDX_UBYTE = 0x08  # IDX type code for unsigned bytes


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a uint8 array, with its header checked."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as err:
        raise CnnlabError(
            f"{path}: corrupt or truncated ({err}); "
            "replace it or delete it and use data.download=true"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE:
        raise CnnlabError(f"{path}: not an IDX ubyte file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise CnnlabError(
            f"{path}: holds {len(raw) - header} bytes of data, header says {expected}; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def search_dirs(data_dir: Path) -> list[Path]:
    return [data_dir / "FashionMNIST" / "raw", DEBIAN_DIR]


def locate(data_dir: Path, download_missing: bool, mirror: str = OFFICIAL_MIRROR) -> Path:
    """The first folder holding all four files, downloading them if allowed."""
    stems = [stem for pair in FILES.values() for stem in pair]
    for folder in search_dirs(data_dir):
        if all(find_file(folder, stem) for stem in stems):
            return folder
    target = search_dirs(data_dir)[0]
    if download_missing:
        for name, md5 in OFFICIAL_MD5.items():
            download(f"{mirror.rstrip('/')}/{name}", target / name, md5)
        return target
    searched = " and ".join(f"{d}/" for d in search_dirs(data_dir))
    raise CnnlabError(
        f"Fashion-MNIST not found: searched {searched}; fix: set CNNLAB_DATA_DIR "
        "(or paths.data_dir=...) to a folder holding FashionMNIST/raw/*-ubyte.gz "
        "(or `apt-get install dataset-fashion-mnist`), or add data.download=true"
    )


def load_fashion_mnist(folder: Path, train: bool) -> Split:
    image_stem, label_stem = FILES["train" if train else "test"]
    image_path, label_path = find_file(folder, image_stem), find_file(folder, label_stem)
    if image_path is None or label_path is None:
        raise CnnlabError(f"{folder}: missing {image_stem} or {label_stem}")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise CnnlabError(f"{image_path}: images are {images.shape}, expected N x 28 x 28")
    if labels.shape != (images.shape[0],):
        raise CnnlabError(f"{label_path}: {labels.shape[0]} labels for {images.shape[0]} images")
    if labels.max() >= len(CLASSES):
        raise CnnlabError(f"{label_path}: labels outside 0..9")
    return Split(
        torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))
    )


class FashionMNISTDataModule(ImageDataModule):
    """Fashion-MNIST: 60k train (validation split from it) and the official 10k test set."""

    name = "fashion_mnist"
    classes = CLASSES
    in_channels = 1
    image_size = 28
    train_size = 60_000
    official_mirror = OFFICIAL_MIRROR
    find_files = staticmethod(locate)
    read_files = staticmethod(load_fashion_mnist)
