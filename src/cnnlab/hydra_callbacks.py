"""Hydra callbacks: guards that must run before Hydra writes into the run dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cnnlab.errors import fail


class RefuseExistingRunDir(Callback):
    """Never clobber a finished or running run: refuse a `hydra.run.dir` that holds files.

    Runs at `on_run_start`, before Hydra saves `.hydra/` into the directory, so the old
    run's config is still intact when we refuse. `resume=...` opts in to reusing the dir.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(config.hydra.run.dir)
        if config.get("resume") or not run_dir.is_dir() or not any(run_dir.iterdir()):
            return
        fail(
            f"run dir {run_dir} already holds a run; pick a new hydra.run.dir "
            "(or leave it unset for a fresh timestamped one)"
        )
