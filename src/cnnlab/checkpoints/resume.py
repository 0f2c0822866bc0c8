"""Where a run starts from: `resume=auto` (its own last.ckpt), `ckpt_path=<file>`, or scratch.

`resume=auto` makes re-running the same command idempotent: a run dir with a finished run
(metrics.json) is reported, not retrained; one with `checkpoints/last.ckpt` continues from
it; an empty one starts fresh. That is also what lets a killed sweep be re-run with the same
`hydra.sweep.dir`: finished jobs are skipped, the killed one continues, the rest start.
A checkpoint written under a different model/data/optimizer config is refused, so a reused
dir can never silently mix two experiments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from cnnlab.checkpoints.atomic import is_partial
from cnnlab.checkpoints.io import LAST, check_resumable, read_checkpoint
from cnnlab.errors import CnnlabError

METRICS_FILE = "metrics.json"
HYDRA_DIR = ".hydra"
RESUME_MODES = ("auto",)
# What defines the experiment; trainer/callbacks/paths may legitimately change on resume
# (more epochs, another device, another data path).
IDENTITY_KEYS = ("data", "model", "optim", "scheduler", "augment", "module", "seed")
IGNORED_KEYS = ("data.data_dir", "data.num_workers", "data.download", "data.mirror")


def resume_mode(cfg: DictConfig) -> str | None:
    mode = cfg.get("resume")
    if mode in (None, False):
        return None
    if mode not in RESUME_MODES:
        raise CnnlabError(
            f"resume must be auto or null (got {mode!r}); to start from a file use ckpt_path=<file>"
        )
    return str(mode)


def checkpoint_dir(cfg: DictConfig) -> Path:
    dirpath = OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath", default=None)
    return Path(dirpath) if dirpath else Path(cfg.paths.output_dir) / "checkpoints"


def holds_a_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds (part of) a run that a new one must not overwrite.

    What Hydra writes before the task starts (`.hydra/`, `<job>.log`) is not a run, nor are
    temp files of interrupted writes: a start that was refused or failed before training
    leaves the dir free for the corrected command.
    """
    if not run_dir.is_dir():
        return False
    for entry in run_dir.iterdir():
        if entry.name == HYDRA_DIR and entry.is_dir():
            continue
        if entry.is_file() and (entry.suffix == ".log" or is_partial(entry)):
            continue
        return True
    return False


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): node}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`key: saved -> current` for every identity key that differs."""
    old = _flatten({k: saved.get(k) for k in IDENTITY_KEYS})
    new = _flatten({k: current.get(k) for k in IDENTITY_KEYS})
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if key not in IGNORED_KEYS and old.get(key) != new.get(key)
    ]


def check_same_experiment(
    path: str | Path, checkpoint: dict[str, Any], current: dict[str, Any]
) -> None:
    saved = checkpoint.get("cnnlab_config")
    if not saved:
        return
    differences = config_differences(saved, current)
    if differences:
        raise CnnlabError(
            f"{path}: resume=auto found a run of another config ({differences[0]}"
            f"{f' and {len(differences) - 1} more' if len(differences) > 1 else ''}); "
            "use a new hydra.run.dir / hydra.sweep.dir, or the original overrides"
        )


def check_resume_target(
    cfg: DictConfig, current: dict[str, Any], folder: Path | None = None
) -> None:
    """With resume=auto, refuse a dir whose last.ckpt was written by another experiment.

    Runs before anything is written into the dir (the Hydra callback calls it before Hydra
    saves `.hydra/`), so a refused command leaves the other run's files as they were.
    """
    if resume_mode(cfg) is None:
        return
    last = (folder or checkpoint_dir(cfg)) / LAST
    if last.is_file():
        check_same_experiment(last, read_checkpoint(last), current)


def finished_metrics(cfg: DictConfig, current: dict[str, Any]) -> dict[str, Any] | None:
    """With resume=auto, the recorded metrics of a run that already finished in this dir
    (`check_resume_target` has made sure it is the same experiment)."""
    if resume_mode(cfg) is None:
        return None
    recorded = Path(cfg.paths.output_dir) / METRICS_FILE
    if not recorded.is_file():
        return None
    try:
        return json.loads(recorded.read_text())
    except ValueError:
        return None  # unreadable (a kill during a non-atomic write): the test re-runs


def start_checkpoint(
    cfg: DictConfig, module: L.LightningModule, current: dict[str, Any]
) -> str | None:
    """The checkpoint fit starts from: own last.ckpt (resume=auto), else ckpt_path, else None.

    Checked before fit, so a corrupt, foreign or mismatched file is one line naming it.
    """
    path: str | None = None
    if resume_mode(cfg) == "auto" and (checkpoint_dir(cfg) / LAST).is_file():
        path = str(checkpoint_dir(cfg) / LAST)
        checkpoint = read_checkpoint(path)
        check_same_experiment(path, checkpoint, current)  # checked before; the file may change
    elif cfg.get("ckpt_path"):
        path = str(cfg.ckpt_path)
        checkpoint = read_checkpoint(path)
    else:
        return None
    check_resumable(path, checkpoint, module)
    return path
