"""Synthetic datasets in the official file formats, and where the real data is."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from cnnlab.paths import REPO_ROOT

IN_CI = os.environ.get("CI", "").lower() == "true"


def find_real_data() -> Path | None:
    for candidate in (os.environ.get("CNNLAB_DATA_DIR"), REPO_ROOT.parent / "shared" / "data"):
        if (
            candidate
            and (Path(candidate) / "cifar-10-batches-py").is_dir()
            and (Path(candidate) / "FashionMNIST" / "raw").is_dir()
        ):
            return Path(candidate)
    return None


def learnable_pixels(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """Noise around a class-dependent brightness: random enough to test readers, yet
    learnable in a few steps, so tests about learning (stop-at, overfit) are not at chance."""
    base = labels.astype(np.int64)[:, None] * 24
    return np.clip(base + rng.integers(0, 40, size=(len(labels), size)), 0, 255).astype(np.uint8)


def write_cifar_batches(
    folder: Path, per_batch: int = 40, test_size: int = 50, seed: int = 0
) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = test_size if name == "test_batch" else per_batch
        labels = [int(i % 10) for i in range(n)]
        data = learnable_pixels(rng, np.array(labels), 3072)
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [b"c%d" % i for i in range(10)]}, handle, protocol=2)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion_files(
    folder: Path, train_size: int = 240, test_size: int = 60, seed: int = 0, gz: bool = True
) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train_size), ("t10k", test_size)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = learnable_pixels(rng, labels, 28 * 28).reshape(n, 28, 28)
        for stem, array in (
            (f"{prefix}-images-idx3-ubyte", images),
            (f"{prefix}-labels-idx1-ubyte", labels),
        ):
            payload = idx_bytes(array)
            if gz:
                (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
            else:
                (folder / stem).write_bytes(payload)
