"""The train task: validate -> build -> fit -> test the best checkpoint -> metrics.json.

`train(cfg)` is importable and tested; `main()` is the Hydra entry used by `train.py` and
`cnnlab train`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import hydra
import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from cnnlab.checkpoints.atomic import finite_or_none, remove_partial_files, write_json
from cnnlab.checkpoints.io import LAST
from cnnlab.checkpoints.resume import (
    check_resume_target,
    checkpoint_dir,
    finished_metrics,
    start_checkpoint,
)
from cnnlab.config import config_to_save
from cnnlab.errors import CnnlabError, exits_cleanly, os_error_in, output_error
from cnnlab.machine import keep_freed_memory
from cnnlab.noise import silence_library_noise
from cnnlab.paths import CONFIG_DIR
from cnnlab.sweeps.ddp import refuse_script_relaunch_in_multirun
from cnnlab.training.build import build, build_list, build_model, resolve_precision
from cnnlab.training.callbacks.faults import fault_injection
from cnnlab.training.callbacks.resume import (
    Interrupted,
    exit_after_interrupt,
    exit_interrupted,
    interrupts_stop_at_once,
)
from cnnlab.training.config_tree import print_config_tree
from cnnlab.training.hparams import log_hyperparameters, run_hparams
from cnnlab.training.loggers import close_loggers
from cnnlab.training.validation import validate_config

METRICS_FILE = "metrics.json"


def apply_process_settings(cfg: DictConfig) -> None:
    """Settings of the whole process (once set, they hold for everything it runs after)."""
    if cfg.get("keep_freed_memory", False):
        keep_freed_memory()


def build_run(
    cfg: DictConfig, callbacks: Sequence[Callback] = ()
) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """DataModule, LightningModule and Trainer for a validated config; `callbacks` are added
    to the configured ones (live objects a config cannot name, e.g. a search's pruner)."""
    apply_process_settings(cfg)
    datamodule = build(cfg.data, "data", augment=build(cfg.augment, "augment"))
    model = build_model(cfg.model, datamodule)
    module = build(
        cfg.module,
        "module",
        model=model,
        optimizer=build(cfg.optim, "optim"),
        scheduler=build(cfg.scheduler.scheduler, "scheduler") if cfg.scheduler.scheduler else None,
        scheduler_interval=cfg.scheduler.interval,
        scheduler_monitor=cfg.scheduler.monitor,
        class_names=datamodule.classes,
    )
    module.run_config = config_to_save(cfg)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_cfg["precision"] = resolve_precision(
        trainer_cfg.get("accelerator", "auto"), trainer_cfg.get("precision", "auto")
    )
    trainer = build(
        trainer_cfg,
        "trainer",
        callbacks=[*build_list(cfg.get("callbacks"), "callbacks"), *callbacks, *fault_injection()],
        logger=build_list(cfg.get("logger"), "logger") or False,
    )
    return datamodule, module, trainer


@runtime_checkable
class ReportsMetrics(Protocol):
    """A callback that adds entries to metrics.json (beyond the logged test metrics)."""

    def report(self) -> dict[str, Any]: ...


def best_key(monitor: str) -> str:
    """Key of the best monitored value: val/acc -> best_val_acc, val/r2 -> best_val_r2."""
    return "best_" + monitor.replace("/", "_")


def checkpoint_callback(trainer: L.Trainer) -> ModelCheckpoint | None:
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor:
            return callback
    return None


def train(cfg: DictConfig, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Fit (or resume), test the best checkpoint on the official test set, write `metrics.json`.
    `callbacks` join the configured ones (`cnnlab search` passes its pruning callback).

    Every check that can refuse the run comes before anything is written into its dir.
    SIGTERM/SIGINT end the process with 128+signal after saving what resumes exactly:
    inside fit at the next batch boundary (`LastCheckpoint`), elsewhere at once (the final
    test re-runs on resume). An output that cannot be written (full disk, read-only dir) is
    one line naming it.
    """
    output_dir = Path(cfg.paths.output_dir)
    last = checkpoint_dir(cfg) / LAST
    phase = "stopped before training (re)started, nothing new to save"
    try:
        # Ctrl+C stops at once wherever LastCheckpoint's handling is not active (e.g. while
        # fit loads the data); SIGTERM stops at once outside fit, and is Lightning's inside.
        with interrupts_stop_at_once(signal.SIGINT):
            with interrupts_stop_at_once(signal.SIGTERM):
                validate_config(cfg)
                current = config_to_save(cfg)
                check_resume_target(cfg, current)
                finished = finished_metrics(cfg, current)
                if finished is not None:  # resume=auto on a finished run: nothing left to do
                    return finished
                if rank_zero_only.rank == 0:  # the one process that writes them
                    remove_partial_files(output_dir, last.parent)
                L.seed_everything(cfg.seed, workers=True, verbose=False)
                datamodule, module, trainer = build_run(cfg, callbacks)
                refuse_script_relaunch_in_multirun(trainer)
                log_hyperparameters(trainer.loggers, run_hparams(cfg), module.compared_on)
                ckpt_path = start_checkpoint(cfg, module, current)

            # A first Ctrl+C or SIGTERM in fit saves and exits via exit_after_interrupt;
            # only a second Ctrl+C (or one before fit starts training) ends up here.
            phase = f"aborted without saving; {last} is the latest state"
            started = time.perf_counter()
            try:
                trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
            except SIGTERMException:
                exit_after_interrupt(trainer, output_dir)
            train_seconds = time.perf_counter() - started

            phase = f"training is complete in {last}, the final test re-runs"
            with interrupts_stop_at_once(signal.SIGTERM):
                return final_test_and_metrics(cfg, datamodule, module, trainer, train_seconds)
    except (Interrupted, SIGTERMException) as stop:
        signum = stop.signum if isinstance(stop, Interrupted) else signal.SIGTERM
        exit_interrupted(signum, output_dir, phase, rank_zero_only.rank == 0)
    except CnnlabError:
        raise
    except Exception as err:
        one_line = output_error(err, output_dir) if _is_output(err, output_dir) else None
        if one_line is None:
            raise
        raise one_line from None


def _is_output(err: BaseException, output_dir: Path) -> bool:
    """An OSError about a path of this run (or about no path: a write torch or a logger
    made), not about the data it reads."""
    found = os_error_in(err)
    if found is None:
        return False
    if not found.filename:
        return True
    return Path(str(found.filename)).resolve().is_relative_to(output_dir.resolve())


def final_test_and_metrics(
    cfg: DictConfig,
    datamodule: L.LightningDataModule,
    module: L.LightningModule,
    trainer: L.Trainer,
    train_seconds: float,
) -> dict[str, Any]:
    """Test the best checkpoint and write metrics.json (strict JSON: non-finite is null)."""
    output_dir = Path(cfg.paths.output_dir)
    best = checkpoint_callback(trainer)
    best_path = best.best_model_path if best is not None and best.best_model_path else None
    monitor = best.monitor if best is not None else "val/acc"
    metrics: dict[str, Any] = {}
    if cfg.get("test", True):
        results = trainer.test(module, datamodule=datamodule, ckpt_path=best_path, verbose=False)
        metrics.update(
            {k: float(v) for k, v in results[0].items() if not k.startswith("test_per_class/")}
        )
        metrics.update(module.results())  # e.g. per-class scores
        for callback in trainer.callbacks:  # non-numeric entries, e.g. the baseline's name
            if isinstance(callback, ReportsMetrics):
                metrics.update(callback.report())
    best_score = best.best_model_score if best is not None else None
    logged_val = trainer.callback_metrics.get(monitor)
    metrics.update(
        {
            "monitor": monitor,
            best_key(monitor): float(best_score)
            if best_score is not None
            else (float(logged_val) if logged_val is not None else None),
            "epochs": int(trainer.current_epoch),
            "global_step": int(trainer.global_step),
            "train_seconds": round(train_seconds, 3),
            "params": sum(p.numel() for p in module.model.parameters()),
            "best_checkpoint": best_path,
            "run_dir": str(output_dir),
            "tags": [str(tag) for tag in cfg.get("tags") or []],
        }
    )
    metrics = finite_or_none(metrics)
    if trainer.is_global_zero and not trainer.fast_dev_run:
        write_json(output_dir / METRICS_FILE, metrics, fault=("writing_metrics", None))
    close_loggers(trainer.loggers)  # this job's runs end here (the next job of -m starts its own)
    return metrics


def print_summary(metrics: dict[str, Any], cfg: DictConfig) -> None:
    """The end-of-run report: test metrics, then where the run and its logs are."""
    console = Console()
    table = Table(title="Test metrics (official test set)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    baseline = [k for k in metrics if k.startswith("baseline/")]
    for key in (
        "test/acc",
        "test/precision",
        "test/recall",
        "test/f1",
        "test/auroc",
        "test/mae",
        "test/rmse",
        "test/r2",
        "test/loss",
        best_key(metrics.get("monitor", "val/acc")),
        "epochs",
        "train_seconds",
        "params",
        *baseline,
    ):
        value = metrics.get(key)
        if value is not None:
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    # Paths are printed plainly: never wrapped, so they can be copied from any terminal.
    run_dir = Path(cfg.paths.output_dir)
    print(f"Run dir:     {run_dir}")
    if (run_dir / METRICS_FILE).exists():
        print(f"Metrics:     {run_dir / METRICS_FILE}")
    if (run_dir / "tensorboard").exists():
        logs = run_dir / "tensorboard"
        print(f"TensorBoard: {logs}   (view: tensorboard --logdir {logs})")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
@exits_cleanly
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the best monitored score (val/acc, val/r2: higher is better)
    so sweepers can optimise it."""
    silence_library_noise()
    try:
        if cfg.get("print_config", True) and rank_zero_only.rank == 0:
            validate_config(cfg)  # a bad value is its one error line, not a tree first
            print_config_tree(cfg)
        metrics = train(cfg)
    except FileNotFoundError as err:  # a path in the config that does not exist
        raise CnnlabError(f"{err.filename}: not found ({err.strerror})") from None
    if rank_zero_only.rank == 0:
        print_summary(metrics, cfg)
    return metrics.get(best_key(metrics["monitor"]))
