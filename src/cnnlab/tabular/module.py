"""The LightningModule for regression: MSE (or Huber) loss, MAE/RMSE/R² from torchmetrics.

The classification module's counterpart (`module=regression`). It logs `val/r2` as the
monitored score: higher is better, like `val/acc`, so checkpointing, early stopping,
`callbacks.stop_at` and sweeps keep their "maximise" direction for both tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from cnnlab.errors import CnnlabError
from cnnlab.training.module import OptimizerFactory, SchedulerFactory, TaskModule

LOSSES = ("mse", "huber")


def regression_metrics(prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "mae": MeanAbsoluteError(),
            "rmse": MeanSquaredError(squared=False),
            "r2": R2Score(),
        },
        prefix=prefix,
    )


class RegressionModule(TaskModule):
    """A single-output model trained on a real-valued target, metrics in the target's units."""

    compared_on = ("val/r2", "val/loss", "test/r2", "test/loss")

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory | None,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/r2",
        scheduler_frequency: int = 1,
        loss: str = "mse",
        huber_delta: float = 1.0,
        class_names: Sequence[str] = (),
    ) -> None:
        if len(class_names):
            raise CnnlabError(
                f"module=regression got a classification dataset (classes: "
                f"{', '.join(map(str, class_names))}); use module=classification, or "
                "data.task=regression for a CSV with a numeric target"
            )
        if loss not in LOSSES:
            raise CnnlabError(f"module.loss must be one of {', '.join(LOSSES)} (got {loss!r})")
        super().__init__(
            model,
            optimizer,
            scheduler,
            scheduler_interval,
            scheduler_monitor,
            scheduler_frequency,
        )
        # huber_delta is in the target's units (the loss sees de-standardised predictions).
        self.criterion = nn.HuberLoss(delta=huber_delta) if loss == "huber" else nn.MSELoss()
        self.val_metrics = regression_metrics("val/")
        self.test_metrics = regression_metrics("test/")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model(features).squeeze(-1)

    def _step(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features, targets = batch
        preds = self(features)
        return self.criterion(preds, targets), preds, targets

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, _, _ = self._step(batch)
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, preds, targets = self._step(batch)
        self.val_metrics.update(preds, targets)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        # Computed over the whole split: R² of per-batch averages would not be R².
        self.log_dict(self.val_metrics.compute(), prog_bar=True)
        self.val_metrics.reset()

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, preds, targets = self._step(batch)
        self.test_metrics.update(preds, targets)
        self.log("test/loss", loss, on_epoch=True)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()
