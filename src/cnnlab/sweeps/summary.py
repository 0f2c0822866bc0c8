"""`summary.csv` / `summary.json` in a sweep dir: one row per job, written as each job ends.

A Hydra callback (`on_job_end`) rather than a post-processing step, so a sweep killed half-way
still leaves the rows of its finished jobs. Jobs may end in parallel processes (joblib) or on
other machines sharing the sweep dir (SLURM), so each update takes a lock, re-reads the rows,
replaces this job's row and rewrites both files atomically (temp file + `os.replace`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from cnnlab.checkpoints.atomic import (
    finite_or_none,
    remove_partial_files,
    strict_json,
    write_atomic,
)
from cnnlab.reporting.rows import to_csv
from cnnlab.sweeps.folds import write_fold_summary

try:  # POSIX advisory locks; without them (Windows) updates are still atomic, just unserialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
METRICS_FILE = "metrics.json"
DEFAULT_METRICS = (
    "best_val_acc",
    "test/acc",
    "test/f1",
    "test/loss",
    "epochs",
    "global_step",
    "train_seconds",
    "params",
)


def _write_atomic(path: Path, text: str, fault: tuple[str, int | None] | None = None) -> None:
    write_atomic(path, lambda handle: handle.write(text), mode="w", fault=fault)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".summary.lock", "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def read_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    path = Path(sweep_dir) / SUMMARY_JSON
    return json.loads(path.read_text()) if path.is_file() else []


def upsert_row(sweep_dir: Path, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace (by run dir) or add `row`, then rewrite summary.json (strict JSON: a
    non-finite value is null) and summary.csv."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with _locked(sweep_dir):
        rows = [r for r in read_rows(sweep_dir) if r.get("run_dir") != row["run_dir"]]
        rows.append(finite_or_none(row))
        rows.sort(key=lambda r: (r.get("job") is None, r.get("job"), r.get("run_dir")))
        fault = ("writing_summary", row.get("job"))
        _write_atomic(sweep_dir / SUMMARY_JSON, strict_json(rows), fault=fault)
        _write_atomic(sweep_dir / SUMMARY_CSV, to_csv(rows))
        write_fold_summary(sweep_dir, rows)  # a sweep over data.fold: mean ± std per group
    return rows


def _error_line(job_return: JobReturn) -> str:
    error = getattr(job_return, "_return_value", None)  # JobReturn.return_value re-raises it
    text = str(error).strip().splitlines()[0] if error is not None and str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if error is not None else ""


def job_row(config: DictConfig, job_return: JobReturn, metrics: Sequence[str]) -> dict[str, Any]:
    """overrides, status, key metrics (from the run's metrics.json) and run dir of one job."""
    run_dir = Path(config.hydra.runtime.output_dir)
    overrides = [str(o) for o in config.hydra.overrides.task]
    completed = job_return.status == JobStatus.COMPLETED
    row: dict[str, Any] = {
        "job": config.hydra.job.get("num"),
        "status": "completed" if completed else "failed",
        "overrides": " ".join(overrides),
    }
    for override in overrides:
        key, _, value = override.partition("=")
        row[key.lstrip("+~")] = value
    recorded = run_dir / METRICS_FILE
    values = json.loads(recorded.read_text()) if completed and recorded.is_file() else {}
    if completed and not values and isinstance(job_return.return_value, (int, float)):
        values = {"best_val_acc": job_return.return_value}
    row.update({name: values.get(name) for name in metrics})
    row["run_dir"] = str(run_dir)
    row["error"] = "" if completed else _error_line(job_return)
    return row


class SweepSummary(Callback):
    """Append each finished multirun job to `<hydra.sweep.dir>/summary.{csv,json}`."""

    def __init__(self, metrics: Sequence[str] = DEFAULT_METRICS) -> None:
        self.metrics = list(metrics)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A sweep re-run with resume=auto: temp files of summary writes a kill interrupted.
        remove_partial_files(Path(config.hydra.sweep.dir))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        upsert_row(Path(config.hydra.sweep.dir), job_row(config, job_return, self.metrics))
