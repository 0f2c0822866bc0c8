"""The task modules: one base that owns training wiring, one subclass per task.

Models stay plain `nn.Module`s; everything about *training* them lives here. Optimizer
and scheduler arrive as partially-instantiated callables from their config groups, so
adding an optimizer is a YAML file, not a code change. `TaskModule` owns that wiring and
the run config saved in every checkpoint; a task (classification here, regression in the
tabular case study) adds only its loss and metrics.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from cnnlab.errors import CnnlabError
from cnnlab.models import InitFromData
from cnnlab.training.tta import TTA_MODES, tta_logits

MIN_SCHEDULE_STEPS = 10
CONFIG_KEY = "cnnlab_config"  # where a checkpoint keeps the run config that wrote it

# Every scalar a classification run logs: TensorBoard tags, CSV columns, MLflow and W&B keys.
# One list, stable names; docs/ecosystem.md documents the same and a test compares both with
# the event files. `lr` is the optimizer's learning rate (`lr/<group>` per parameter group
# when it has several), `epoch` is Lightning's own.
SCALARS = (
    "train/loss",  # epoch mean of the training loss
    "train/loss_step",  # per optimizer step (every trainer.log_every_n_steps)
    "train/acc",
    "val/loss",
    "val/acc",
    "lr",
    "epoch",
    "test/loss",
    "test/acc",
    "test/precision",
    "test/recall",
    "test/f1",
)
# Binary targets only (the tabular case study) add test/auroc; per class, after test:
PER_CLASS_SCALAR = "test_per_class/{metric}/{class_name}"  # metric: precision | recall | f1

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


def schedule_length(optimizer_steps: int) -> int:
    """The `total_steps` a run-length schedule gets for a run of `optimizer_steps` steps.

    At least MIN_SCHEDULE_STEPS: OneCycle's warm-up phase must span >= 1 step even in a
    fast_dev_run (1 step), or it divides by zero. One rule, so that a hand-written loop
    (bench/overhead.py) follows exactly the schedule the module gives a truncated run.
    """
    return max(MIN_SCHEDULE_STEPS, int(optimizer_steps))


class TaskModule(L.LightningModule):
    """A plain model plus what training it needs: optimizer/scheduler wiring, data-dependent
    init, and a self-describing checkpoint. Subclasses add the loss and the metrics."""

    # The logged metrics runs are compared on (the columns of TensorBoard's HPARAMS tab).
    compared_on: tuple[str, ...] = ("val/loss", "test/loss")

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory | None,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/acc",
        scheduler_frequency: int = 1,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.scheduler_frequency = scheduler_frequency
        # The run config, attached by the train task and stored in every checkpoint
        # (on_save_checkpoint), so a checkpoint says which config wrote it.
        self.run_config: dict[str, Any] | None = None

    def setup(self, stage: str) -> None:
        """Data-dependent init for models that ask for it (`InitFromData`); runs before a
        resumed checkpoint's weights are restored."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and isinstance(self.model, InitFromData) and datamodule is not None:
            self.model.init_from_data(datamodule.init_batch())

    def results(self) -> dict[str, Any]:
        """Entries for metrics.json beyond the logged test scalars (after a test pass)."""
        return {}

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        kwargs: dict[str, Any] = {}
        # Schedules that need the run length (OneCycle) declare `total_steps`; the trainer knows it.
        if (
            "total_steps" in inspect.signature(self.scheduler_factory).parameters
            and getattr(self.scheduler_factory, "keywords", {}).get("total_steps") is None
        ):
            kwargs["total_steps"] = schedule_length(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer=optimizer, **kwargs)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.scheduler_interval,
                "monitor": self.scheduler_monitor,
                "frequency": self.scheduler_frequency,
            },
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint[CONFIG_KEY] = self.run_config


class ClassificationModule(TaskModule):
    """Cross-entropy training with torchmetrics accuracy, macro and per-class P/R/F1."""

    compared_on = ("val/acc", "val/loss", "test/acc", "test/loss")

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory | None,
        class_names: Sequence[str],
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/acc",
        scheduler_frequency: int = 1,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        tta: str = "none",
        compile: bool = False,
    ) -> None:
        if tta not in TTA_MODES:
            raise ValueError(f"module.tta must be one of {', '.join(TTA_MODES)} (got {tta})")
        super().__init__(
            model.to(memory_format=torch.channels_last) if channels_last else model,
            optimizer,
            scheduler,
            scheduler_interval,
            scheduler_monitor,
            scheduler_frequency,
        )
        self.tta = tta  # test-time augmentation of the test step (cnnlab.training.tta)
        if compile:  # torch.compile in place: state_dict keys (and checkpoints) stay the same
            self.model.compile()
        self.class_names = list(class_names)
        if len(self.class_names) < 2:
            raise CnnlabError(
                "module=classification needs class labels but the data has a regression "
                "target; add module=regression (data.task=regression needs it too)"
            )
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

        n = len(self.class_names)
        self.train_acc = MulticlassAccuracy(num_classes=n, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=n, average="micro")
        # Losses as sample-weighted torchmetrics means: synced sums under DDP, so the epoch
        # loss is exact whatever the per-rank batch sizes (Lightning's sync_dist averages means).
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        test_metrics = {
            "acc": MulticlassAccuracy(num_classes=n, average="micro"),
            "precision": MulticlassPrecision(num_classes=n, average="macro"),
            "recall": MulticlassRecall(num_classes=n, average="macro"),
            "f1": MulticlassF1Score(num_classes=n, average="macro"),
        }
        if n == 2:  # binary targets (tabular case study): ranking quality, threshold-free
            test_metrics["auroc"] = MulticlassAUROC(num_classes=2)
        self.test_metrics = MetricCollection(test_metrics, prefix="test/")
        self.test_per_class = MetricCollection(
            {
                "precision": MulticlassPrecision(num_classes=n, average=None),
                "recall": MulticlassRecall(num_classes=n, average=None),
                "f1": MulticlassF1Score(num_classes=n, average=None),
            }
        )
        self.test_confusion = MulticlassConfusionMatrix(num_classes=n)
        # Filled at the end of each test epoch for callbacks and reports to read.
        self.per_class_results: dict[str, dict[str, float]] = {}
        self.confusion_matrix: torch.Tensor | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def _step(
        self, batch: tuple[torch.Tensor, torch.Tensor], tta: str = "none"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, labels = batch
        logits = tta_logits(self, images, tta)
        return self.criterion(logits, labels), logits, labels

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, logits, labels = self._step(batch)
        self.train_acc(logits, labels)
        # Two names rather than Lightning's `_step`/`_epoch` suffixes: `train/loss` is the curve.
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._step(batch)
        self.val_acc(logits, labels)
        self.val_loss.update(loss, weight=labels.numel())
        self.log("val/loss", self.val_loss, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._step(batch, self.tta)
        # Probabilities, not logits: AUROC ranks by them (argmax metrics are unchanged). In fp32:
        # a bf16 softmax (CPU autocast keeps bf16) ties classes that the logits tell apart.
        self.test_metrics.update(logits.float().softmax(dim=-1), labels)
        self.test_per_class.update(logits, labels)
        self.test_confusion.update(logits, labels)
        self.test_loss.update(loss, weight=labels.numel())
        self.log("test/loss", self.test_loss, on_epoch=True)

    def on_test_epoch_end(self) -> None:
        # compute() already syncs across DDP ranks; sync_dist just averages identical values.
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()
        per_class = {
            name: values.tolist() for name, values in self.test_per_class.compute().items()
        }
        self.test_per_class.reset()
        self.confusion_matrix = self.test_confusion.compute().cpu()  # rows: true, cols: predicted
        self.test_confusion.reset()
        self.per_class_results = {
            cls: {metric: float(values[i]) for metric, values in per_class.items()}
            for i, cls in enumerate(self.class_names)
        }
        self.log_dict(
            {
                f"test_per_class/{metric}/{cls}": values[metric]
                for cls, values in self.per_class_results.items()
                for metric in values
            },
            sync_dist=True,
        )

    def results(self) -> dict[str, Any]:
        return {"per_class": self.per_class_results} if self.per_class_results else {}
