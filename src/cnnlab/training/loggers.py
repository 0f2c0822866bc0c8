"""The optional loggers (`logger=mlflow`, `logger=wandb`): Lightning's, each behind its own
package extra, and each closed when its job ends.

Closing matters in a multirun: Hydra runs the jobs of `-m` one after another in the same
process, and a W&B run left open would be reused by the next job's logger (Lightning's
WandbLogger attaches to `wandb.run` when there is one).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from lightning.pytorch import loggers

from cnnlab.errors import CnnlabError

ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"


def require(module: str, option: str) -> None:
    """One line naming the extra to install, instead of Lightning's ModuleNotFoundError."""
    if importlib.util.find_spec(module) is None:
        raise CnnlabError(
            f"logger={option} needs the {module} package: pip install -e '.[{option}]'"
        )


@runtime_checkable
class Closes(Protocol):
    """A logger whose run stays open across fit and test and is closed by the train task."""

    def close(self) -> None: ...


def close_loggers(run_loggers: Iterable[Any]) -> None:
    for logger in run_loggers:
        if isinstance(logger, Closes):
            logger.close()


class MLFlowLogger(loggers.MLFlowLogger):
    """Lightning's MLFlowLogger (needs the `mlflow` extra). Lightning ends its run as
    FINISHED or FAILED after fit and again after test; the run is addressed by its id, never
    through MLflow's global active run, so jobs cannot share one."""

    def __init__(self, tracking_uri: str | None = None, **kwargs: Any) -> None:
        require("mlflow", "mlflow")
        if tracking_uri and tracking_uri.startswith("file:"):
            # MLflow 3 refuses its file store (kept in maintenance mode) unless opted in; it is
            # the store that needs no server and no database, which is the point here.
            os.environ.setdefault(ALLOW_FILE_STORE, "true")
        super().__init__(tracking_uri=tracking_uri, **kwargs)


class WandbLogger(loggers.WandbLogger):
    """Lightning's WandbLogger (needs the `wandb` extra), whose run is finished when the job
    ends: by the train task after the test pass, or here when Lightning reports a failure."""

    def __init__(self, **kwargs: Any) -> None:
        require("wandb", "wandb")
        super().__init__(**kwargs)

    def finalize(self, status: str) -> None:
        super().finalize(status)
        if status == "failed":
            self.close(exit_code=1)

    def close(self, exit_code: int = 0) -> None:
        if self._experiment is not None:
            self._experiment.finish(exit_code=exit_code)
            self._experiment = None
