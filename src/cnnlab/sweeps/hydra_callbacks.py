"""Hydra callbacks: guards that must run before Hydra writes into the run or sweep dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cnnlab.checkpoints.resume import (
    IDENTITY_KEYS,
    check_resume_target,
    holds_a_run,
    resume_mode,
)
from cnnlab.errors import CnnlabError, fail, output_error


def _resuming(config: DictConfig) -> bool:
    """resume=auto given (checked here, before Hydra writes its .hydra/ into the dir)."""
    try:
        return resume_mode(config) is not None
    except CnnlabError as err:
        fail(str(err))
        raise  # unreachable: fail() exits


def ensure_writable(folder: Path) -> None:
    """Write a file in `folder`, or say in one line why the run cannot write there (a
    read-only disk or folder, a parent that is a file, a full disk). Folders it had to
    create are removed again: a later refusal must find nothing written."""
    first_new = next((p for p in [folder, *folder.parents][::-1] if not p.exists()), None)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        if first_new is not None:
            shutil.rmtree(first_new, ignore_errors=True)
    except OSError as err:
        raise output_error(err, folder) or CnnlabError(
            f"cannot write {folder}: {err.strerror or err}; pick another hydra.run.dir"
        ) from None


def _identity(config: DictConfig) -> dict[str, Any] | None:
    """The keys that define the experiment, resolved; None if they need Hydra's runtime
    values (the train task then checks them itself)."""
    try:
        return {
            key: OmegaConf.to_container(config[key], resolve=True)
            if OmegaConf.is_config(config[key])
            else config[key]
            for key in IDENTITY_KEYS
            if key in config
        }
    except Exception:
        return None


def _validate(config: DictConfig) -> None:
    """The train task's config checks, now; values that need Hydra's runtime (rare) are
    left to the task, which checks again."""
    from cnnlab.training.validation import validate_config

    try:
        validate_config(config)
    except CnnlabError:
        raise
    except Exception:
        return


class RefuseExistingRunDir(Callback):
    """Every refusal of a single run, before Hydra writes `.hydra/` and its log into the dir.

    At `on_run_start`: the config checks (a bad value writes nothing), a dir that already
    holds a run (unless `resume=...`), a `resume=auto` dir of another experiment, and a run
    dir that cannot be written. A refused command therefore leaves an existing run exactly
    as it was. Sweeps: the sweep dir is checked at `on_multirun_start`; each job's own
    checks run in the train task, after Hydra has set up the job's dir.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if os.environ.get("LOCAL_RANK", "0") != "0":
            return  # a DDP process that Lightning started in rank 0's run dir
        run_dir = Path(config.hydra.run.dir)
        resuming = _resuming(config)
        try:
            _validate(config)
            if not resuming and holds_a_run(run_dir):
                raise CnnlabError(
                    f"run dir {run_dir} already holds a run; pick a new hydra.run.dir (or leave "
                    "it unset for a fresh timestamped one), or add resume=auto to continue it"
                )
            identity = _identity(config)
            if resuming and identity is not None:
                check_resume_target(config, identity, folder=run_dir / "checkpoints")
            ensure_writable(run_dir)
        except CnnlabError as err:
            fail(str(err), err.exit_code)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not _resuming(config) and sweep_dir.is_dir() and any(sweep_dir.iterdir()):
            fail(
                f"sweep dir {sweep_dir} already holds a sweep; pick a new hydra.sweep.dir, or "
                "add resume=auto to finish it (finished jobs are kept, killed ones continue)"
            )
        try:
            ensure_writable(sweep_dir)
        except CnnlabError as err:
            fail(str(err))


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
