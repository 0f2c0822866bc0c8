"""Shared fixtures: composed configs, tiny synthetic datasets in the official formats,
and the real data (skipped when absent, a failure under CI=true)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from cnnlab.config import compose_run_config
from tests.helpers.data import (
    IN_CI,
    find_real_data,
    write_cifar_batches,
    write_fashion_files,
)


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


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with tiny CIFAR-10 (200 train / 50 test) and Fashion-MNIST (240 / 60) files."""
    root = tmp_path_factory.mktemp("synthetic_data")
    write_cifar_batches(root / "cifar-10-batches-py")
    write_fashion_files(root / "FashionMNIST" / "raw")
    return root


# -- composed configs ----------------------------------------------------------------------
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
        return compose_run_config(
            base + list(overrides or []),
            output_dir or tmp_path / "run",
            data_dir or synthetic_data_dir,
        )

    return factory


@pytest.fixture(scope="session")
def tiny_run(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished short real run (simple_cnn on Fashion-MNIST, 2 x 40 batches): its run dir.

    Holds metrics.json, checkpoints/ (best + last) and tensorboard/ like any run; shared by
    the tests of every verb that reads runs or checkpoints. In fp32 on every machine kind:
    those tests compare its numbers exactly with fp32 passes over the same checkpoint.
    """
    from cnnlab.training.task import train

    run_dir = tmp_path_factory.mktemp("tiny_run")
    cfg = compose_run_config(
        [
            "experiment=quickstart",
            "trainer.max_epochs=2",
            "trainer.precision=32-true",
            "trainer.limit_train_batches=40",
            "trainer.limit_val_batches=2",
            "callbacks.rich_progress_bar=null",
        ],
        run_dir,
        real_data_dir,
    )
    train(cfg)
    return run_dir
