"""Hydra callbacks: guards that must run before Hydra writes into the run or sweep dir."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cnnlab.checkpoints.resume import resume_mode
from cnnlab.errors import CnnlabError, fail


def _resuming(config: DictConfig) -> bool:
    """resume=auto given (checked here, before Hydra writes its .hydra/ into the dir)."""
    try:
        return resume_mode(config) is not None
    except CnnlabError as err:
        fail(str(err))
        raise  # unreachable: fail() exits


class RefuseExistingRunDir(Callback):
    """Never clobber a finished or running run: refuse a `hydra.run.dir` that holds files.

    Runs at `on_run_start`, before Hydra saves `.hydra/` into the directory, so the old
    run's config is still intact when we refuse. `resume=...` opts in to reusing the dir.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(config.hydra.run.dir)
        if _resuming(config) or not run_dir.is_dir() or not any(run_dir.iterdir()):
            return
        if os.environ.get("LOCAL_RANK", "0") != "0":
            return  # a DDP process that Lightning started in rank 0's run dir
        fail(
            f"run dir {run_dir} already holds a run; pick a new hydra.run.dir "
            "(or leave it unset for a fresh timestamped one), or add resume=auto to continue it"
        )

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if _resuming(config) or not sweep_dir.is_dir() or not any(sweep_dir.iterdir()):
            return
        fail(
            f"sweep dir {sweep_dir} already holds a sweep; pick a new hydra.sweep.dir, or add "
            "resume=auto to finish it (finished jobs are kept, killed ones continue)"
        )


class ReplacedBySearch(Callback):
    """`hparams_search=optuna` ran hydra-optuna-sweeper, which needs optuna<3 and cannot prune
    trials; `cnnlab search` took its place. One line says so instead of a composition error."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        fail(
            "hparams_search=optuna is replaced by `cnnlab search`: run `cnnlab search` with the "
            "same train overrides (e.g. cnnlab search experiment=quickstart n_trials=20); "
            "see docs/search.md"
        )

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.on_run_start(config)
