"""What every training run leaves for the eye: curves.png, confusion matrix, per-class table."""

from __future__ import annotations

import json
import re

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnlab.checkpoints.io import read_checkpoint
from cnnlab.reporting import figures
from cnnlab.training.callbacks.artifacts import TrainingCurves
from cnnlab.verbs.runs import read_curve


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()  # decodes the whole file: a truncated PNG fails here
        assert image.format == "PNG"
        return image.size


def test_training_curves_figure_plots_the_history_and_the_target():
    epochs = [
        {"epoch": 1, "train/loss": 1.2, "val/loss": 0.9, "train/acc": 0.55, "val/acc": 0.70},
        {"epoch": 2, "train/loss": 0.6, "val/loss": 0.7, "train/acc": 0.80, "val/acc": 0.78},
    ]
    lr = [(0.0, 0.1), (1.0, 0.05), (2.0, 0.0)]
    fig = figures.training_curves(epochs, lr, target=0.85)
    loss_ax, acc_ax, lr_ax = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy", "Learning rate"]
    assert figures.figure_pixels(fig) == (1500, 420)
    val_acc = next(line for line in acc_ax.lines if line.get_label().startswith("val"))
    assert list(val_acc.get_ydata()) == [0.70, 0.78]
    assert "best 0.7800, epoch 2" in val_acc.get_label()
    target = next(line for line in acc_ax.lines if line.get_label().startswith("target"))
    assert set(target.get_ydata()) == {0.85}
    assert [list(line.get_ydata()) for line in loss_ax.lines] == [[1.2, 0.6], [0.9, 0.7]]
    assert list(lr_ax.lines[0].get_xdata()) == [0.0, 1.0, 2.0]


def test_training_curves_state_survives_a_checkpoint():
    callback = TrainingCurves(dirpath=".")
    callback.epochs = {0: {"val/acc": 0.5}, 1: {"val/acc": 0.6, "train/loss": 0.3}}
    callback.lr = [(0.0, 0.1)]
    restored = TrainingCurves(dirpath=".")
    restored.load_state_dict(callback.state_dict())
    assert restored.history() == [
        {"epoch": 1, "val/acc": 0.5},
        {"epoch": 2, "val/acc": 0.6, "train/loss": 0.3},
    ]


def test_a_run_leaves_curves_confusion_matrix_and_per_class_table(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())

    # curves.png: the figure size training_curves() promises, drawn from what was logged.
    assert png_size(tiny_run / "curves.png") == (1500, 420)
    state = read_checkpoint(tiny_run / "checkpoints" / "last.ckpt")["callbacks"]["TrainingCurves"]
    recorded = [state["epochs"][e]["val/acc"] for e in sorted(state["epochs"])]
    epochs, logged = read_curve(tiny_run, "val/acc")
    assert epochs == [1.0, 2.0]
    assert recorded == pytest.approx(logged)
    assert max(recorded) == pytest.approx(metrics["best_val_acc"])
    assert len(state["lr"]) > 2 * 2  # OneCycle changes the lr every step

    # confusion_matrix.png: a square-ish figure sized for 10 classes.
    width, height = png_size(tiny_run / "confusion_matrix.png")
    assert (width, height) == (round((0.55 * 10 + 2.5 + 1) * 100), round((0.55 * 10 + 2.5) * 100))

    # per_class.md: one row per class with the numbers of metrics.json, then the average.
    text = (tiny_run / "per_class.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 10 + 1  # header, classes, macro average
    for name, values in metrics["per_class"].items():
        row = next(r for r in rows if r.startswith(f"| {name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) == pytest.approx(values["precision"], abs=5e-5)
        assert float(cells[3]) == pytest.approx(values["f1"], abs=5e-5)
        assert cells[4] == "1,000"  # the official test set has 1000 images per class
    macro = [c.strip() for c in rows[-1].strip("|").split("|")]
    assert float(macro[3]) == pytest.approx(metrics["test/f1"], abs=5e-5)

    # ... and the confusion matrix is also an image in TensorBoard.
    events = EventAccumulator(str(tiny_run / "tensorboard"))
    events.Reload()
    assert "test/confusion_matrix" in events.Tags()["images"]
    image = events.Images("test/confusion_matrix")[-1]
    assert (image.width, image.height) == (width, height)


def test_confusion_matrix_figure_titles_the_accuracy():
    cm = torch.tensor([[5, 1], [2, 2]])
    fig = figures.confusion_matrix(cm, ["a", "b"], "demo")
    title = fig.axes[0].get_title()
    assert re.search(r"10 images, accuracy 0\.7000", title)
