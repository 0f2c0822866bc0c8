"""The one LightningModule for classification: loss, metrics, optimizer/scheduler wiring.

Models stay plain `nn.Module`s; everything about *training* them lives here. Optimizer
and scheduler arrive as partially-instantiated callables from their config groups, so
adding an optimizer is a YAML file, not a code change.
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
from cnnlab.training.tta import TTA_MODES, tta_logits

MIN_SCHEDULE_STEPS = 10


def schedule_length(optimizer_steps: int) -> int:
    """The `total_steps` a run-length schedule gets for a run of `optimizer_steps` steps.

    At least MIN_SCHEDULE_STEPS: OneCycle's warm-up phase must span >= 1 step even in a
    fast_dev_run (1 step), or it divides by zero. One rule, so that a hand-written loop
    (bench/overhead.py) follows exactly the schedule the module gives a truncated run.
    """
    return max(MIN_SCHEDULE_STEPS, int(optimizer_steps))


OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


class ClassificationModule(L.LightningModule):
    """Cross-entropy training with torchmetrics accuracy, macro and per-class P/R/F1."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
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
        super().__init__()
        if tta not in TTA_MODES:
            raise ValueError(f"module.tta must be one of {', '.join(TTA_MODES)} (got {tta})")
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.tta = tta  # test-time augmentation of the test step (cnnlab.training.tta)
        if compile:  # torch.compile in place: state_dict keys (and checkpoints) stay the same
            self.model.compile()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.scheduler_frequency = scheduler_frequency
        self.class_names = list(class_names)
        if len(self.class_names) < 2:
            raise CnnlabError(
                "module=classification needs class labels but the data has a regression "
                "target; add module=regression (data.task=regression needs it too)"
            )
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        # The Hydra config of the run is attached by the train task and stored in every
        # checkpoint (see on_save_checkpoint) so a checkpoint is self-describing.
        self.run_config: dict[str, Any] | None = None

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

    def setup(self, stage: str) -> None:
        """Data-dependent init (airbench's whitening conv) for models that define
        `init_from_data`; runs before a resumed checkpoint's weights are restored."""
        init = getattr(self.model, "init_from_data", None)
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and callable(init) and hasattr(datamodule, "init_batch"):
            init(datamodule.init_batch())

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
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
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
            checkpoint["cnnlab_config"] = self.run_config
