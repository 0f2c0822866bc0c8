"""A classical baseline beside the network: does the network earn its place?

At test time, `BaselineComparison` fits a linear model (ridge regression, or logistic
regression) on the data module's *training rows*, predicts its *test rows*, and scores the
predictions with a clone of the LightningModule's own `test_metrics`: the same metric code
on the same split, logged as `baseline/test/<metric>` next to `test/<metric>` (so it lands
in metrics.json and TensorBoard like every test metric). Data modules without
`features(split)` (the image sets) get no baseline: the callback does nothing there.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression, Ridge
from torchmetrics import MetricCollection


@runtime_checkable
class HasFeatureArrays(Protocol):
    """A data module that can hand its preprocessed splits to scikit-learn."""

    task: str

    def features(self, split: str) -> tuple[np.ndarray, np.ndarray]: ...


class BaselineComparison(Callback):
    """Fit and score the task's classical baseline when the data module supports it."""

    def __init__(self, ridge_alpha: float = 1.0, logistic_c: float = 1.0) -> None:
        self.estimators: dict[str, BaseEstimator] = {
            "regression": Ridge(alpha=ridge_alpha),
            "classification": LogisticRegression(C=logistic_c, max_iter=5000),
        }
        self.model_name: str | None = None

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        metrics = getattr(pl_module, "test_metrics", None)
        if not isinstance(datamodule, HasFeatureArrays) or not isinstance(
            metrics, MetricCollection
        ):
            return
        estimator = clone(self.estimators[datamodule.task])
        estimator.fit(*datamodule.features("train"))
        x_test, y_test = datamodule.features("test")
        # Class probabilities play the network's softmax output; regressors predict values.
        predict = getattr(estimator, "predict_proba", estimator.predict)
        preds = torch.as_tensor(np.asarray(predict(x_test)), dtype=torch.float32)
        scorer = metrics.clone(prefix="baseline/test/")
        scorer.reset()  # callbacks run before the module's epoch end: drop the clone's state
        scorer.update(preds.to(pl_module.device), torch.as_tensor(y_test).to(pl_module.device))
        pl_module.log_dict(scorer.compute())
        self.model_name = str(estimator)

    def report(self) -> dict[str, Any]:
        """Entries for metrics.json that are not numbers: which baseline was fitted."""
        return {"baseline/model": self.model_name} if self.model_name else {}
