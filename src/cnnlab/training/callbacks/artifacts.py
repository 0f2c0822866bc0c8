"""Lightning callbacks that turn a run into pictures: training curves and test artifacts.

Both are config entries of `conf/callbacks/default.yaml`, so every `train.py` run gets them;
`cnnlab.verbs.evaluate` attaches `ClassificationReport` to its own test pass (one writer per file).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from cnnlab.reporting import figures
from cnnlab.reporting.markdown import per_class_table
from cnnlab.training.module import ClassificationModule

log = logging.getLogger(__name__)

CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion_matrix.png"
PER_CLASS_FILE = "per_class.md"
# Whichever the module logs: accuracy (classification) or R² (regression, no train/r2).
CURVE_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc", "val/r2")


def _scalar(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


class TrainingCurves(Callback):
    """Records epoch metrics and the learning rate during fit; draws `curves.png` at its end.

    Reads what the module already logs (`trainer.callback_metrics`) instead of logging
    twice, and samples the optimizer's lr at every step where it changes, so a per-step
    schedule is drawn with its real shape. Its history is part of the checkpoint
    (`state_dict`), so a resumed run still draws its curves from epoch 1.
    """

    def __init__(
        self, dirpath: str | Path, target: float | None = None, filename: str = CURVES_FILE
    ) -> None:
        self.dirpath = Path(dirpath)
        self.target = target
        self.filename = filename
        self.epochs: dict[int, dict[str, float]] = {}
        self.lr: list[tuple[float, float]] = []

    @property
    def path(self) -> Path:
        return self.dirpath / self.filename

    def _record(self, trainer: L.Trainer, prefix: str) -> None:
        row = self.epochs.setdefault(trainer.current_epoch, {})
        for name in CURVE_METRICS:
            if not name.startswith(prefix):
                continue
            value = _scalar(trainer.callback_metrics.get(name))
            if value is not None:
                row[name] = value

    def _sample_lr(self, trainer: L.Trainer, force: bool = False) -> None:
        """Append (epochs done, lr in effect from now on) when the lr has changed.

        Sampled after Lightning has stepped the scheduler (per step, and per epoch before
        `on_train_epoch_end`), so each sample holds until the next one.
        """
        if not trainer.optimizers:
            return
        lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        batches = trainer.num_training_batches
        per_epoch = batches if isinstance(batches, int) and batches > 0 else 1
        x = trainer.global_step / per_epoch
        if force or not self.lr or self.lr[-1][1] != lr:
            self.lr.append((x, lr))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sample_lr(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._sample_lr(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, "train/")
        self._sample_lr(trainer, force=True)  # a constant lr still draws a line to the end

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sample_lr(trainer, force=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, "val/")

    def history(self) -> list[dict[str, float]]:
        """One row per epoch (1-based `epoch`), oldest first."""
        return [{"epoch": epoch + 1, **row} for epoch, row in sorted(self.epochs.items()) if row]

    def draw(self, title: str = "") -> figures.Figure:
        return figures.training_curves(self.history(), self.lr, self.target, title)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.fast_dev_run:
            figures.save(self.draw(), self.path)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        # An interrupted run (Ctrl-C, a crash mid-epoch) still leaves its curves so far.
        if trainer.is_global_zero and not trainer.fast_dev_run and self.history():
            try:
                figures.save(self.draw(title="(interrupted)"), self.path)
            except Exception as err:  # never mask the original exception
                log.warning("could not draw %s: %s", self.path, err)

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "lr": self.lr}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epochs = {int(k): dict(v) for k, v in state_dict.get("epochs", {}).items()}
        self.lr = [tuple(p) for p in state_dict.get("lr", [])]


def write_test_artifacts(
    dirpath: Path,
    confusion: torch.Tensor,
    per_class: dict[str, dict[str, float]],
    classes: list[str],
    title: str = "",
) -> figures.Figure:
    """`confusion_matrix.png` and `per_class.md` into `dirpath`; returns the figure."""
    dirpath.mkdir(parents=True, exist_ok=True)
    fig = figures.confusion_matrix(confusion, classes, title)
    figures.save(fig, dirpath / CONFUSION_FILE)
    support = confusion.sum(dim=1).tolist()
    heading = f"# Per-class results{f' - {title}' if title else ''}\n\n"
    (dirpath / PER_CLASS_FILE).write_text(heading + per_class_table(per_class, support) + "\n")
    return fig


class ClassificationReport(Callback):
    """After each test pass: the confusion matrix (PNG + TensorBoard image) and the per-class
    precision/recall/F1 table, from what `ClassificationModule` computed at test end."""

    def __init__(self, dirpath: str | Path, title: str = "test set") -> None:
        self.dirpath = Path(dirpath)
        self.title = title

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not isinstance(pl_module, ClassificationModule):
            return  # the regression task has no classes to tabulate
        confusion = pl_module.confusion_matrix
        if confusion is None or not trainer.is_global_zero or trainer.fast_dev_run:
            return
        fig = write_test_artifacts(
            self.dirpath,
            confusion,
            pl_module.per_class_results,
            list(pl_module.class_names),
            self.title,
        )
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                # The Agg canvas's pixels, not add_figure: that imports pyplot, whose
                # backend choice (a GUI one on a desktop) has no place in a training process.
                logger.experiment.add_image(
                    "test/confusion_matrix",
                    figures.rgb_pixels(fig),
                    global_step=trainer.global_step,
                    dataformats="HWC",
                )
                logger.experiment.flush()
