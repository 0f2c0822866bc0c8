"""The verbs and callbacks on tabular runs: describe, training curves,
test artifacts, evaluate and report for a regression and a tabular classification run.

Two short real trainings (diabetes, breast cancer) and one on the tiny synthetic image set
are shared by module fixtures; describe works on the data modules alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from sklearn.datasets import load_breast_cancer, load_diabetes

from cnnlab.checkpoints.io import read_checkpoint
from cnnlab.config import compose_run_config
from cnnlab.reporting import figures
from cnnlab.reporting.inspection import count_macs, inspect_model
from cnnlab.tabular.data import TabularDataModule
from cnnlab.tabular.mlp import MLP
from cnnlab.training.task import train
from cnnlab.verbs.describe import main as describe_main
from cnnlab.verbs.evaluate import evaluate
from cnnlab.verbs.export import main as export_main
from cnnlab.verbs.report import report
from cnnlab.verbs.runs import load_run

QUIET = [
    "callbacks.rich_progress_bar=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def run(overrides: list[str], out: Path, data_dir: Path | None = None) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread hand-offs cost more than the math
    try:
        return train(compose_run_config([*overrides, *QUIET], out, data_dir))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("diabetes")
    return out, run(["experiment=case_study_diabetes", "trainer.max_epochs=4"], out)


@pytest.fixture(scope="module")
def breast_cancer_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("breast_cancer")
    return out, run(["experiment=case_study_breast_cancer", "trainer.max_epochs=3"], out)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory, synthetic_data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("image")
    overrides = ["data=fashion_mnist", "data.val_size=20", "trainer.max_epochs=1"]
    run([*overrides, "data.batch_size=64"], out, synthetic_data_dir)
    return out


def markdown_rows(text: str, heading: str) -> dict[str, list[str]]:
    """First cell -> other cells of the table under `## heading`."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ")
    ]
    return {row[0]: row[1:] for row in rows}


# -- describe ------------------------------------------------------------------------------
def test_describe_breast_cancer_counts_classes_and_features(tmp_path, capsys):
    out = tmp_path / "bc"
    describe_main(["data=breast_cancer", f"out_dir={out}"])
    text = (out / "describe.md").read_text()
    assert text in capsys.readouterr().out
    assert not (out / "samples.png").exists()  # rows, not images: no sample grid

    bunch = load_breast_cancer()
    counts = np.bincount(bunch.target)
    target = markdown_rows(text, "Target")
    for code, name in enumerate(bunch.target_names):
        assert target[name][0] == str(counts[code])
    assert target["**total**"][0] == str(len(bunch.target))
    features = markdown_rows(text, "Features")
    features.pop("column")
    assert list(features) == list(bunch.feature_names)
    assert all(kind == ["numeric", "standardised"] for kind in features.values())
    assert "stratified by class" in text and "training rows only" in text


def test_describe_diabetes_target_statistics_and_target_scaling(tmp_path):
    out = tmp_path / "diabetes"
    describe_main(["data=diabetes", f"out_dir={out}"])
    text = (out / "describe.md").read_text()
    y = load_diabetes().target
    stats = markdown_rows(text, "Target")
    header = ["mean", *stats.pop("mean")]
    ((first, rest),) = stats.items()
    values = dict(zip(header, (float(v) for v in [first, *rest]), strict=True))
    assert values["mean"] == pytest.approx(y.mean(), abs=1e-4)
    assert values["max"] == pytest.approx(y.max())
    assert "task: regression" in text.lower() and "output layer folds in" in text


def test_describe_csv_with_categorical_column_and_bad_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=60),
            "city": rng.choice(["oslo", "rome", "lima"], size=60),
            "label": rng.choice(["a", "b"], size=60),
        }
    )
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "csv"
    describe_main(["data=csv", f"data.path={path}", "data.target=label", f"out_dir={out}"])
    features = markdown_rows((out / "describe.md").read_text(), "Features")
    assert features["size"] == ["numeric", "standardised"]
    assert features["city"] == ["categorical", "one-hot (3 values)"]
    assert "-> 4 model inputs" in (out / "describe.md").read_text()  # 1 numeric + 3 one-hot

    capsys.readouterr()
    missing = tmp_path / "not_written"
    with pytest.raises(SystemExit) as exit_info:
        describe_main(["data=csv", f"data.path={path}", "data.target=nope", f"out_dir={missing}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no column 'nope'" in err[0]
    assert not missing.exists()  # failed before creating the output dir


# -- training callbacks ----------------------------------------------------------------------
def test_training_curves_draw_r2_when_there_is_no_accuracy():
    epochs = [
        {"epoch": 1, "train/loss": 9.0, "val/loss": 8.0, "val/r2": 0.2},
        {"epoch": 2, "train/loss": 7.0, "val/loss": 6.5, "val/r2": 0.4},
    ]
    fig = figures.training_curves(epochs, [(0.0, 0.01), (2.0, 0.01)])
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "R²", "Learning rate"]
    (line,) = fig.axes[1].lines
    assert list(line.get_ydata()) == [0.2, 0.4] and "best 0.4000, epoch 2" in line.get_label()


def test_regression_run_curves_and_no_classification_artifacts(diabetes_run):
    out, metrics = diabetes_run
    assert (out / "curves.png").is_file()
    state = read_checkpoint(out / "checkpoints" / "last.ckpt")["callbacks"]
    curves = next(v for k, v in state.items() if k.startswith("TrainingCurves"))
    history = [curves["epochs"][e] for e in sorted(curves["epochs"])]
    # last.ckpt is written while its own epoch's row is being filled: it may lag one epoch.
    assert metrics["epochs"] - 1 <= len(history) <= metrics["epochs"]
    assert all("val/r2" in row and "val/acc" not in row for row in history)
    assert max(row["val/r2"] for row in history) <= metrics["best_val_r2"] + 1e-6
    assert not (out / "confusion_matrix.png").exists() and not (out / "per_class.md").exists()


def test_tabular_classification_confusion_matrix(breast_cancer_run):
    out, _ = breast_cancer_run
    table = (out / "per_class.md").read_text()
    support = {
        line.split("|")[1].strip(): int(line.split("|")[-2].replace(",", ""))
        for line in table.splitlines()
        if line.startswith("| ") and line.split("|")[1].strip() in ("malignant", "benign")
    }
    test_rows = len(TabularDataModule("breast_cancer", "classification").split_indices["test"])
    assert sum(support.values()) == test_rows
    assert (out / "confusion_matrix.png").is_file()


# -- evaluate ------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["diabetes_run", "breast_cancer_run"])
def test_evaluate_reproduces_the_test_metrics(which, request, tmp_path):
    _, trained = request.getfixturevalue(which)
    scores, eval_dir = evaluate(trained["best_checkpoint"], out_dir=str(tmp_path / "eval"))
    tested = {k: v for k, v in trained.items() if k.startswith("test/")}
    assert tested and {k: scores[k] for k in tested} == pytest.approx(tested, rel=1e-5)
    written = json.loads((eval_dir / "metrics.json").read_text())
    assert ("per_class" in written) == ("per_class" in trained)
    assert (eval_dir / "confusion_matrix.png").exists() == ("per_class" in trained)


def test_evaluate_uses_the_checkpoint_preprocessing(diabetes_run):
    _, trained = diabetes_run
    ckpt = trained["best_checkpoint"]
    stored = read_checkpoint(ckpt)["TabularDataModule"]["preprocessing"]["fitted"]
    # Another split seed: a refit transform would see other training rows.
    overrides = OverridesParser.create().parse_overrides(["data.split_seed=1"])
    loaded = load_run(ckpt, overrides)
    assert loaded.datamodule.record()["fitted"] == stored
    refit = TabularDataModule("diabetes", "regression", test_fraction=0.3, split_seed=1)
    assert refit.record()["fitted"] != stored


# -- report --------------------------------------------------------------------------------
def test_mlp_on_features_has_macs_but_no_receptive_field():
    model = MLP(in_features=7, num_outputs=2, hidden=[5])
    assert count_macs(model) == 7 * 5 + 5 * 2
    facts = inspect_model(model)
    assert facts["input_shape"] == (7,) and facts["receptive_field"] is None


def test_report_lists_image_and_tabular_runs(image_run, breast_cancer_run, diabetes_run, tmp_path):
    (bc_dir, bc), (diab_dir, diab) = breast_cancer_run, diabetes_run
    runs = report([image_run, bc_dir, diab_dir], tmp_path, title="mixed")
    assert [r.ok for r in runs] == [True, True, True] and not any(r.problems for r in runs)
    text = (tmp_path / "report.md").read_text()
    results = markdown_rows(text, "Results")
    header = results.pop("#")
    rows = {r[header.index("data")]: dict(zip(header, r, strict=True)) for r in results.values()}
    assert rows["diabetes"]["test R²"] == f"{diab['test/r2']:.4f}"
    assert rows["diabetes"]["test acc %"] == "—"
    assert rows["breast_cancer"]["test acc %"].strip("*") == f"{100 * bc['test/acc']:.2f}"
    setup = markdown_rows(text, "Setup")
    header = setup.pop("#")
    by_data = {r[header.index("data")]: dict(zip(header, r, strict=True)) for r in setup.values()}
    assert by_data["diabetes"]["receptive field"] == "—"
    assert by_data["diabetes"]["params"] == str(diab["params"])
    assert by_data["Fashion-MNIST"]["receptive field"].endswith("px")
    assert (tmp_path / "val_r2.png").is_file() and (tmp_path / "report.html").is_file()


def test_export_refuses_a_tabular_checkpoint_in_one_line(breast_cancer_run, tmp_path, capsys):
    _, trained = breast_cancer_run
    target = tmp_path / "onnx"
    with pytest.raises(SystemExit) as exit_info:
        export_main([f"ckpt_path={trained['best_checkpoint']}", f"out_dir={target}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TabularDataModule run" in err[0] and not target.exists()
