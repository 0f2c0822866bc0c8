"""Tabular case study: real scikit-learn data through train(), the CSV path, bad CSVs.

Three short real trainings (diabetes, its CSV twin, breast cancer) are shared by module
fixtures; everything else works on the data module directly, which is where the split,
the preprocessing and the errors live.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes

from cnnlab.config import compose_run_config
from cnnlab.errors import CnnlabError
from cnnlab.tabular.data import RECORD_FILE, TabularDataModule
from cnnlab.tabular.mlp import MLP
from cnnlab.training.task import build_run, train

QUIET = [
    "callbacks.rich_progress_bar=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def run(overrides: list[str], out: Path) -> dict:
    """Train like `train.py` does; one intra-op thread: these models are too small to gain
    from more, and on a busy CPU the thread hand-offs cost more than the math."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics = train(compose_run_config([*overrides, *QUIET], out))
    finally:
        torch.set_num_threads(threads)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    return metrics


# -- real data through train() -----------------------------------------------------------
@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("diabetes")
    return out, run(["experiment=case_study_diabetes"], out)


@pytest.fixture(scope="module")
def breast_cancer_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("breast_cancer")
    return out, run(["experiment=case_study_breast_cancer"], out)


def test_diabetes_regression_beats_the_training_mean(diabetes_run):
    out, metrics = diabetes_run
    assert metrics["test/r2"] >= 0.35
    # The trivial model: predict the training split's mean for every test row.
    data = TabularDataModule(dataset="diabetes", task="regression", test_fraction=0.3)
    (_, y_train), (_, y_test) = data.features("train"), data.features("test")
    mean_rmse = float(np.sqrt(np.mean((y_test - y_train.mean()) ** 2)))
    assert metrics["test/rmse"] < mean_rmse
    # Regression reports, beside the network's, the ridge baseline on the same split.
    assert {"test/mae", "baseline/test/r2", "baseline/test/rmse"} <= metrics.keys()
    assert metrics["baseline/model"].startswith("Ridge")
    assert metrics["monitor"] == "val/r2" and metrics["best_val_r2"] > 0.3
    assert "per_class" not in metrics and "test/acc" not in metrics
    assert Path(metrics["best_checkpoint"]).name.startswith("epoch")
    assert any((out / "tensorboard").glob("events.out.tfevents.*"))


def test_breast_cancer_classification(breast_cancer_run):
    _, metrics = breast_cancer_run
    assert metrics["test/acc"] >= 0.95
    assert 0.95 <= metrics["test/auroc"] <= 1.0  # binary target: AUROC as well
    assert metrics["baseline/model"].startswith("LogisticRegression")
    assert 0.9 <= metrics["baseline/test/acc"] <= 1.0
    assert set(metrics["per_class"]) == {"malignant", "benign"}


def test_preprocessing_recorded_in_run_dir_and_checkpoint(diabetes_run):
    out, metrics = diabetes_run
    record = json.loads((out / RECORD_FILE).read_text())
    data = TabularDataModule(dataset="diabetes", task="regression", test_fraction=0.3)
    bmi = load_diabetes(as_frame=True, scaled=False).frame["bmi"]
    train_bmi = bmi.iloc[data.split_indices["train"]]
    # Standardised with the training rows' statistics, not those of the whole table.
    assert record["fitted"]["numeric"]["bmi"]["mean"] == pytest.approx(train_bmi.mean())
    assert record["fitted"]["numeric"]["bmi"]["mean"] != pytest.approx(bmi.mean())
    assert record["splits"] == {"train": 242, "val": 67, "test": 133}
    checkpoint = torch.load(metrics["best_checkpoint"], weights_only=True)
    assert checkpoint["TabularDataModule"]["preprocessing"]["fitted"] == record["fitted"]


# -- CSV ----------------------------------------------------------------------------------
def test_csv_round_trip_gives_the_same_split_and_metrics(diabetes_run, tmp_path):
    _, builtin = diabetes_run
    csv = tmp_path / "diabetes.csv"
    load_diabetes(as_frame=True, scaled=False).frame.to_csv(csv, index=False)
    overrides = [
        "experiment=case_study_diabetes",
        "data=csv",
        f"data.path={csv}",
        "data.target=target",
        "data.task=regression",
        "module=regression",
    ]
    from_csv = run(overrides, tmp_path / "run")
    for key in ("test/r2", "test/rmse", "test/mae", "baseline/test/r2", "best_val_r2"):
        assert from_csv[key] == pytest.approx(builtin[key], abs=1e-6), key


def test_csv_classification_split_matches_builtin(tmp_path):
    """Stratified split and features are the same from the CSV twin (no training needed)."""
    csv = tmp_path / "bc.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(csv, index=False)
    builtin = TabularDataModule(dataset="breast_cancer", task="classification")
    twin = TabularDataModule(dataset="csv", path=csv, target="target", task="classification")
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(builtin.split_indices[split], twin.split_indices[split])
        np.testing.assert_array_equal(builtin.features(split)[0], twin.features(split)[0])
    assert builtin.classes == ["malignant", "benign"] and twin.classes == ["0", "1"]
    # Stratified: each split keeps the table's class balance.
    y = load_breast_cancer().target
    for rows in builtin.split_indices.values():
        assert abs(y[rows].mean() - y.mean()) < 0.02


def write_houses(path: Path, n: int = 120) -> pd.DataFrame:
    """A small CSV with numeric, text (categorical) and missing cells."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "sqm": rng.normal(80, 20, n).round(1),
            "city": rng.choice(["Paris", "Lyon", "Nice"], n),
            "label": np.where(np.arange(n) % 2, "cheap", "dear"),
        }
    )
    frame.loc[3, "sqm"] = np.nan
    frame.loc[4, "city"] = np.nan
    frame.to_csv(path, index=False)
    return frame


def test_csv_categorical_one_hot_and_checkpoint_transform(tmp_path):
    csv = tmp_path / "houses.csv"
    write_houses(csv)
    data = TabularDataModule(dataset="csv", path=csv, target="label", task="classification")
    assert data.model_kwargs() == {"in_features": 5, "num_outputs": 2}  # sqm + 4 city columns
    x_train, _ = data.features("train")
    assert np.isfinite(x_train).all()  # missing cells imputed
    assert x_train[:, 0].mean() == pytest.approx(0, abs=1e-6)
    assert x_train[:, 0].std() == pytest.approx(1, abs=1e-3)
    assert set(np.unique(x_train[:, 1:])) == {0.0, 1.0}
    assert (x_train[:, 1:].sum(axis=1) == 1).all()  # one category per row
    summary = data.summary()
    assert summary["features"]["categorical"] == {"city": 3}
    assert summary["features"]["missing_cells"] == {"sqm": 1, "city": 1}
    # Another split fits another transform, until the checkpoint's transform is loaded.
    other = TabularDataModule(
        dataset="csv", path=csv, target="label", task="classification", split_seed=1
    )
    rows = data.split_indices["test"]
    assert not np.array_equal(other._transform(rows), data._transform(rows))
    other.load_state_dict(data.state_dict())
    np.testing.assert_array_equal(other._transform(rows), data._transform(rows))


BAD_CSVS = {
    # name: (file content or None for a missing file, target, words the one line must hold)
    "missing file": (None, "label", ["not found"]),
    "empty file": ("", "label", ["empty file"]),
    "header only": ("sqm,label\n", "label", ["no data rows"]),
    "no target column": ("sqm,label\n1,a\n", "price", ["'price'", "sqm, label"]),
    "text in numeric column": (
        "sqm,label\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(9)) + "eighty,a\n",
        "label",
        ["'sqm'", "'eighty'", "row 10"],
    ),
    "class with too few rows": (
        "sqm,label\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(20)) + "3,c\n",
        "label",
        ["'label'", "class 'c'", "1 row"],
    ),
    "empty target cell": ("sqm,label\n1,a\n2,\n3,b\n", "label", ["'label'", "row 2"]),
    "text target for regression": ("sqm,y\n1,2.5\n2,high\n3,1\n", "y", ["'y'", "'high'"]),
    "all-empty and constant columns": (
        "sqm,note,rooms,city,label\n" + "".join(f"{i},,3,Oslo,{'ab'[i % 2]}\n" for i in range(20)),
        "label",
        ["'note' is empty in every row", "'rooms' is 3 in every row", "'city' is 'Oslo'"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_fails_with_one_line_naming_file_and_column(case, tmp_path):
    content, target, words = BAD_CSVS[case]
    csv = tmp_path / "bad.csv"
    if content is not None:
        csv.write_text(content)
    task = "regression" if case == "text target for regression" else "classification"
    with pytest.raises(CnnlabError) as err:
        TabularDataModule(dataset="csv", path=csv, target=target, task=task).model_kwargs()
    message = str(err.value)
    assert "\n" not in message and str(csv) in message
    for word in words:
        assert word in message, (word, message)


def test_the_uninformative_column_message_names_the_drop_that_fixes_it(tmp_path):
    csv = tmp_path / "flat.csv"
    csv.write_text("sqm,id,note,label\n" + "".join(f"{i},{i},,{'ab'[i % 2]}\n" for i in range(20)))
    data = TabularDataModule(
        dataset="csv", path=csv, target="label", task="classification", drop=["id"]
    )
    with pytest.raises(CnnlabError, match=r"drop them with data\.drop=\[id,note\]$"):
        data.model_kwargs()
    fixed = TabularDataModule(
        dataset="csv", path=csv, target="label", task="classification", drop=["id", "note"]
    )
    assert fixed.model_kwargs()["in_features"] == 1


# -- task wiring --------------------------------------------------------------------------
def test_the_tabular_experiments_pick_module_model_and_monitor(tmp_path):
    cfg = compose_run_config(["experiment=tabular_regression"], tmp_path)
    assert cfg.data.dataset == "diabetes"
    assert cfg.module._target_.endswith("RegressionModule")
    assert cfg.model._target_.endswith("MLP") and cfg.augment._target_.endswith("NoAugment")
    assert cfg.callbacks.model_checkpoint.monitor == "val/r2" == cfg.scheduler.monitor
    assert cfg.callbacks.early_stopping.mode == "max"
    assert cfg.callbacks.baseline._target_.endswith("BaselineComparison")
    cfg = compose_run_config(["experiment=tabular", "data=wine"], tmp_path)
    assert cfg.data.dataset == "wine" and cfg.module._target_.endswith("ClassificationModule")
    assert cfg.callbacks.model_checkpoint.monitor == "val/acc"


def test_a_data_option_alone_changes_nothing_else(tmp_path):
    """Choosing tabular data does not quietly swap the model or the task: a model that
    cannot take the data's features is one line that says what to pick."""
    cfg = compose_run_config(["data=diabetes"], tmp_path)
    assert cfg.module._target_.endswith("ClassificationModule")
    assert "baseline" not in cfg.callbacks
    with pytest.raises(CnnlabError, match=r"model SimpleCNN does not fit this data.*model=mlp"):
        build_run(compose_run_config(["data=breast_cancer"], tmp_path))


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["data=breast_cancer", "module=regression"], ["module=classification"]),
        (["data=diabetes", "module=classification"], ["module=regression"]),
    ],
)
def test_module_and_data_task_must_agree(overrides, words, tmp_path):
    with pytest.raises(CnnlabError) as err:
        build_run(compose_run_config(["model=mlp", *overrides], tmp_path))
    for word in words:
        assert word in str(err.value)


def test_mlp_shapes_and_target_scale():
    torch.manual_seed(0)
    model = MLP(in_features=5, num_outputs=1, hidden=[8, 8], norm="batch", target_mean=100.0)
    assert model.eval()(torch.randn(4, 5)).shape == (4, 1)
    # Zeroed last layer: the prediction is the training-split target mean.
    last = model.net[-1]
    torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    assert torch.allclose(model(torch.randn(3, 5)), torch.full((3, 1), 100.0))
    image_mlp = MLP(in_channels=1, num_classes=7, image_size=28, hidden=[16])
    assert image_mlp.input_shape == (1, 28, 28)
    assert image_mlp(torch.randn(2, 1, 28, 28)).shape == (2, 7)
    with pytest.raises(ValueError, match="activation"):
        MLP(in_features=3, num_outputs=2, activation="Nope")
