"""Run `python train.py ...` as a user would: sweeps, DDP and kills need a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import cnnlab
from cnnlab.paths import REPO_ROOT

SRC = Path(cnnlab.__file__).resolve().parents[1]

# Quiet, fast runs: no progress bars, no model summary, no sanity pass, CSV logs.
QUIET = [
    "callbacks.rich_progress_bar=null",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
]

SIGNAL_CALLBACK = '''
import os
import signal

from lightning.pytorch.callbacks import Callback

FITS_STARTED = [0]  # per process: the jobs of a basic-launcher sweep share it


class SignalAtStep(Callback):
    """Send this process `signum` after optimizer step `step` of its `fit_index`-th fit."""

    def __init__(self, step: int, signum: str, fit_index: int = 0) -> None:
        self.step, self.signum, self.fit_index = step, signum, fit_index

    def on_fit_start(self, trainer, pl_module) -> None:
        self.armed = FITS_STARTED[0] == self.fit_index
        FITS_STARTED[0] += 1

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if self.armed and trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signum))
'''


def signal_callback_args(
    folder: Path, step: int, signum: str, fit_index: int = 0
) -> tuple[list[str], Path]:
    """Overrides adding a callback that signals the run itself at `step`, and its import dir."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "signal_at_step.py").write_text(SIGNAL_CALLBACK)
    args = [
        "+callbacks.signal_at_step._target_=signal_at_step.SignalAtStep",
        f"+callbacks.signal_at_step.step={step}",
        f"+callbacks.signal_at_step.signum={signum}",
        f"+callbacks.signal_at_step.fit_index={fit_index}",
    ]
    return args, folder


def cli_env(
    extra_path: Path | None = None,
    data_dir: Path | None = None,
    show_warnings: bool = False,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """This checkout's cnnlab on PYTHONPATH, 1 thread (bitwise repeatable); `data_dir`
    becomes CNNLAB_DATA_DIR; warnings are hidden unless `show_warnings`; `extra_env` adds
    variables (e.g. CNNLAB_FAULT)."""
    unset = ("HYDRA_FULL_ERROR", "LOCAL_RANK", "PYTHONWARNINGS", "CNNLAB_FAULT")
    env = {k: v for k, v in os.environ.items() if k not in unset} | dict(extra_env or {})
    if data_dir is not None:
        env["CNNLAB_DATA_DIR"] = str(data_dir)
    paths = [str(SRC)] + ([str(extra_path)] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    if not show_warnings:
        env["PYTHONWARNINGS"] = "ignore"
    return env


def run_train(
    args: Sequence[str],
    extra_path: Path | None = None,
    timeout: float = 300,
    data_dir: Path | None = None,
    show_warnings: bool = False,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python train.py *args` with this checkout's cnnlab (see `cli_env`); `env` adds
    variables (e.g. CNNLAB_FAULT)."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), *args],
        cwd=REPO_ROOT,
        env=cli_env(extra_path, data_dir, show_warnings, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cnnlab(
    verb: str, args: Sequence[str], extra_path: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`cnnlab <verb> *args` (as `python -m cnnlab`) with this checkout's cnnlab."""
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", verb, *args],
        cwd=REPO_ROOT,
        env=cli_env(extra_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    out, err = result.stdout[-3000:], result.stderr[-5000:]
    return f"exit {result.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"
