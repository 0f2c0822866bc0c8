"""Shared fixtures: composed configs, tiny synthetic datasets in the official formats,
and the real data (skipped when absent, a failure under CI=true)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig

from cnnlab.config import compose_run_config
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


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real CIFAR-10 + Fashion-MNIST folder; skip without it, but never under CI."""
    found = find_real_data()
    if found is None:
        message = (
            "real data not found: set CNNLAB_DATA_DIR to a folder with "
            "cifar-10-batches-py/ and FashionMNIST/raw/"
        )
        if IN_CI:
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    return found


# -- synthetic data in the canonical formats ---------------------------------------------
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


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with tiny CIFAR-10 (200 train / 50 test) and Fashion-MNIST (240 / 60) files."""
    root = tmp_path_factory.mktemp("synthetic_data")
    write_cifar_batches(root / "cifar-10-batches-py")
    write_fashion_files(root / "FashionMNIST" / "raw")
    return root


# -- composed configs ----------------------------------------------------------------------
def compose_config(
    overrides: list[str], output_dir: Path, data_dir: Path | None = None
) -> DictConfig:
    """The train config as Hydra would compose it, with run outputs under `output_dir`."""
    return compose_run_config(overrides, output_dir, data_dir)


ConfigFactory = Callable[..., DictConfig]


@pytest.fixture
def make_cfg(tmp_path: Path, synthetic_data_dir: Path) -> ConfigFactory:
    """`make_cfg(["model=..."], data_dir=None)`: defaults to the synthetic data, small val split."""

    def factory(
        overrides: list[str] | None = None,
        data_dir: Path | None = None,
        output_dir: Path | None = None,
        small_val: bool = True,
    ) -> DictConfig:
        # The synthetic image sets are tiny: their validation split must be too.
        base = ["data.val_size=20"] if small_val and data_dir is None else []
        return compose_config(
            base + list(overrides or []),
            output_dir or tmp_path / "run",
            data_dir or synthetic_data_dir,
        )

    return factory


@pytest.fixture(scope="session")
def tiny_run(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished short real run (simple_cnn on Fashion-MNIST, 2 x 40 batches): its run dir.

    Holds metrics.json, checkpoints/ (best + last) and tensorboard/ like any run; shared by
    the tests of every verb that reads runs or checkpoints.
    """
    from cnnlab.training.task import train

    run_dir = tmp_path_factory.mktemp("tiny_run")
    cfg = compose_config(
        [
            "experiment=quickstart",
            "trainer.max_epochs=2",
            "+trainer.limit_train_batches=40",
            "+trainer.limit_val_batches=2",
            "callbacks.rich_progress_bar=null",
        ],
        run_dir,
        real_data_dir,
    )
    train(cfg)
    return run_dir
