"""k-fold cross-validation splits (data.folds / data.fold): images and tables, and their checks."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.tabular.data import TabularDataModule
from cnnlab.training.build import build
from cnnlab.training.validation import validate_config

K = 5


def image_split(make_cfg, *overrides: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(val images, val labels, test images) of the synthetic CIFAR-10 (200 / 50 images)."""
    dm = build(make_cfg(list(overrides)).data, "data")
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.train_split) + len(dm.val_split) == 200
    return dm.val_split.images, dm.val_split.labels, dm.test_split.images


def test_image_folds_partition_the_training_set_stratified_and_seeded(make_cfg) -> None:
    folds = [image_split(make_cfg, f"data.folds={K}", f"data.fold={i}") for i in range(K)]
    images = torch.cat([f[0] for f in folds]).flatten(1)
    # Every training image is validated exactly once (the synthetic images are all distinct).
    assert len(images) == 200 and len(torch.unique(images, dim=0)) == 200
    for _, labels, _ in folds:  # 20 images per class: 4 of each class per fold
        assert torch.bincount(labels, minlength=10).tolist() == [4] * 10
    assert all(torch.equal(f[2], folds[0][2]) for f in folds)  # the test set never moves
    again = image_split(make_cfg, f"data.folds={K}", "data.fold=2", "data.val_size=7")
    assert torch.equal(again[0], folds[2][0])  # seeded; val_size plays no part
    other = image_split(make_cfg, f"data.folds={K}", "data.fold=2", "data.split_seed=1")
    assert not torch.equal(other[0], folds[2][0])


def tabular_rows(folds: int | None = None, fold: int | None = None) -> dict[str, np.ndarray]:
    return TabularDataModule("wine", "classification", folds=folds, fold=fold).split_indices


def test_tabular_folds_partition_the_non_test_rows_and_keep_the_test_rows() -> None:
    plain = tabular_rows()
    splits = [tabular_rows(K, i) for i in range(K)]
    rest = np.sort(np.concatenate([plain["train"], plain["val"]]))
    for rows in splits:
        assert np.array_equal(rows["test"], plain["test"])
        assert np.array_equal(np.sort(np.concatenate([rows["train"], rows["val"]])), rest)
    assert np.array_equal(np.sort(np.concatenate([r["val"] for r in splits])), rest)
    dm = TabularDataModule("wine", "classification")
    labels = np.empty(sum(len(r) for r in plain.values()), dtype=np.int64)
    for name in ("train", "val", "test"):  # the class code of every row, by row number
        labels[plain[name]] = dm.features(name)[1]
    whole = np.bincount(labels[rest]) / len(rest)
    for rows in splits:  # stratified: each fold has the classes in the rest's proportions
        share = np.bincount(labels[rows["val"]], minlength=len(whole)) / len(rows["val"])
        assert np.abs(share - whole).max() < 0.07


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.folds=1", "data.fold=0"], "data.folds must be an integer >= 2 or null (got 1)"),
        (["data.folds=5", "data.fold=5"], "data.fold must be one of 0..4 for data.folds=5"),
        (["data.folds=5"], "data.fold must be one of 0..4 for data.folds=5 (got None)"),
        (["data.fold=2"], "data.fold=2 needs data.folds"),
        (["experiment=tabular", "data.folds=3", "data.fold=-1"], "data.fold must be one of 0..2"),
    ],
)
def test_bad_fold_settings_are_one_line(make_cfg, overrides, message) -> None:
    cfg = make_cfg(overrides, small_val="experiment=tabular" not in overrides)
    with pytest.raises(CnnlabError, match=re.escape(message)):
        validate_config(cfg)
