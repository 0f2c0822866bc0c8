"""Reading runs back: checkpoints into model + data, run dirs into configs, metrics and curves.

One place for "what did this run do" so that evaluate, predict, export and report agree:

* a checkpoint carries its own resolved config (`checkpoint["cnnlab_config"]`, written by
  `ClassificationModule.on_save_checkpoint`); failing that, the run dir's
  `.hydra/config.yaml` is used;
* `model=...`, `data.*=...` overrides from the command line are applied on top, so a user
  can point an old checkpoint at another data dir, or (deliberately) at the wrong model,
  which is refused with one line;
* run dirs are whatever `train.py` writes: `metrics.json`, `.hydra/`, `checkpoints/`,
  `tensorboard/` (or `csv/`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from cnnlab.checkpoints.io import read_checkpoint
from cnnlab.config import compose_config
from cnnlab.data.base import ImageDataModule
from cnnlab.errors import CnnlabError
from cnnlab.training.build import build, build_model
from cnnlab.training.module import CONFIG_KEY

METRICS_FILE = "metrics.json"
HYDRA_DIR = ".hydra"
# Groups of conf/train.yaml that `key=option` may swap in a recovered run config.
RUN_GROUPS = ("data", "model", "augment", "optim", "scheduler")


# ----------------------------------------------------------------------------- checkpoints


def run_dir_of(ckpt_path: Path) -> Path | None:
    """The run dir a checkpoint belongs to (`<run>/checkpoints/x.ckpt`), if it looks like one."""
    for candidate in (ckpt_path.parent.parent, ckpt_path.parent):
        if (candidate / HYDRA_DIR).is_dir() or (candidate / METRICS_FILE).is_file():
            return candidate
    return None


# ----------------------------------------------------------------------------- configs


def _resolve(raw: DictConfig, run_dir: Path | None) -> DictConfig:
    """Resolve a saved (unresolved) run config node by node.

    `paths.output_dir` is `${hydra:runtime.output_dir}` in a saved config: it becomes the
    run dir. A node whose interpolations cannot be resolved outside that run is kept as it
    was instead of failing the whole config.
    """
    if run_dir is not None and OmegaConf.select(raw, "paths") is not None:
        raw.paths.output_dir = str(run_dir)
    resolved: dict[str, Any] = {}
    for key in raw:
        try:
            node = raw[key]
            resolved[key] = (
                OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
            )
        except OmegaConfBaseException:
            resolved[key] = OmegaConf.to_container(raw._get_node(key), resolve=False)
    return OmegaConf.create(resolved)


def saved_config(run_dir: Path) -> DictConfig | None:
    """`<run>/.hydra/config.yaml`, resolved, or None when the run dir has none."""
    path = run_dir / HYDRA_DIR / "config.yaml"
    if not path.is_file():
        return None
    try:
        return _resolve(OmegaConf.load(path), run_dir)
    except (OmegaConfBaseException, OSError, ValueError) as err:
        raise CnnlabError(f"{path}: unreadable run config ({err})") from None


def saved_choices(run_dir: Path) -> dict[str, str]:
    """Which option of each config group the run used (`model: resnet18`), from Hydra."""
    path = run_dir / HYDRA_DIR / "hydra.yaml"
    if not path.is_file():
        return {}
    try:
        choices = OmegaConf.select(OmegaConf.load(path), "hydra.runtime.choices")
    except OmegaConfBaseException:
        return {}
    return {str(k): str(v) for k, v in (choices or {}).items() if v is not None}


def saved_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides a run was started with (`.hydra/overrides.yaml`)."""
    path = run_dir / HYDRA_DIR / "overrides.yaml"
    if not path.is_file():
        return []
    try:
        return [str(item) for item in OmegaConf.load(path)]
    except (OmegaConfBaseException, TypeError):
        return []


def config_of_checkpoint(checkpoint: dict[str, Any], ckpt_path: Path) -> DictConfig:
    """The run config stored in the checkpoint, else its run dir's `.hydra/config.yaml`."""
    stored = checkpoint.get(CONFIG_KEY)
    if isinstance(stored, dict):
        return OmegaConf.create(stored)
    run_dir = run_dir_of(ckpt_path)
    cfg = saved_config(run_dir) if run_dir is not None else None
    if cfg is None:
        raise CnnlabError(
            f"{ckpt_path}: holds no cnnlab config and no <run>/.hydra/config.yaml is beside it; "
            "use a checkpoint written by train.py"
        )
    return cfg


def config_of_run_dir(run_dir: Path) -> DictConfig | None:
    """The run dir's saved Hydra config, else the config stored in its best checkpoint."""
    cfg = saved_config(run_dir)
    if cfg is None:
        ckpt = best_checkpoint(run_dir)
        if ckpt is not None:
            cfg = config_of_checkpoint(read_checkpoint(ckpt, weights_only=True), ckpt)
    return cfg


def default_data_dir() -> str:
    """Where data lives on *this* machine now ($CNNLAB_DATA_DIR or <repo>/data)."""
    cfg = compose_config("train", [])
    return str(OmegaConf.select(cfg, "paths.data_dir"))


def apply_run_overrides(cfg: DictConfig, overrides: list[Override]) -> DictConfig:
    """Apply `model=resnet18` (a whole group option) and `data.batch_size=64` (a value)."""
    cfg = cfg.copy()
    groups = [o for o in overrides if o.key_or_group in RUN_GROUPS]
    if groups:
        fresh = compose_config("train", [o.input_line for o in groups])
        for o in groups:
            node = OmegaConf.to_container(fresh[o.key_or_group], resolve=True)
            cfg[o.key_or_group] = node
    for o in overrides:
        if o in groups:
            continue
        if o.key_or_group == "paths.data_dir":  # the data dir as the user thinks of it
            OmegaConf.update(cfg, "data.data_dir", o.value(), force_add=True)
        if o.type == OverrideType.DEL:
            raise CnnlabError(f"{o.input_line}: deleting keys is not supported here")
        if "." not in o.key_or_group and o.key_or_group not in cfg:
            raise CnnlabError(
                f"{o.input_line}: unknown key; options here are this verb's own, "
                f"a group ({', '.join(RUN_GROUPS)}) or a dotted run key such as data.batch_size=256"
            )
        try:
            OmegaConf.update(cfg, o.key_or_group, o.value(), force_add=True)
        except OmegaConfBaseException as err:
            raise CnnlabError(f"{o.input_line}: {err}".splitlines()[0]) from None
    return cfg


# ----------------------------------------------------------------------------- building


def build_datamodule(cfg: DictConfig) -> Any:
    """The run's DataModule for inference (no augmentation: nothing here trains).

    A recorded data dir that does not exist on this machine falls back to this machine's
    default, so a checkpoint trained elsewhere still evaluates.
    """
    data = cfg.data.copy()
    if "data_dir" in data:  # image sets; tabular data names its file (or none) instead
        recorded = OmegaConf.select(data, "data_dir")
        if recorded is None or not Path(str(recorded)).expanduser().exists():
            data.data_dir = default_data_dir()
    return build(data, "data")


def restore_datamodule_state(datamodule: Any, checkpoint: dict[str, Any]) -> None:
    """The DataModule state Lightning saved in the checkpoint (under its class name), e.g.
    the tabular sets' fitted preprocessing, so inference transforms rows as training did."""
    state = checkpoint.get(type(datamodule).__qualname__)
    if isinstance(state, dict):
        datamodule.load_state_dict(state)


def model_name(cfg: DictConfig) -> str:
    return str(OmegaConf.select(cfg, "model._target_", default="?")).rsplit(".", 1)[-1]


def model_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights of `module.model` (the plain nn.Module) from a Lightning state_dict."""
    prefix = "model."
    state = checkpoint["state_dict"]
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_weights(
    model: nn.Module, state: dict[str, torch.Tensor], ckpt_path: Path, name: str
) -> None:
    """`load_state_dict(strict=True)`, with a mismatch reported as one line."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        details = []
        if missing:
            details.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong_shape:
            details.append(f"{len(wrong_shape)} of another shape (e.g. {wrong_shape[0]})")
        raise CnnlabError(
            f"{ckpt_path} does not match model {name}: {'; '.join(details)}; "
            "use the model and data it was trained with (drop model=/data= overrides)"
        )
    model.load_state_dict(state, strict=True)


@dataclass
class LoadedRun:
    """A checkpoint brought back: its config, DataModule (not set up) and model (eval mode)."""

    ckpt_path: Path
    run_dir: Path | None
    cfg: DictConfig
    datamodule: Any
    model: nn.Module

    @property
    def classes(self) -> list[str]:
        return list(self.datamodule.classes)

    def require_images(self, verb: str) -> None:
        """One line instead of a traceback for verbs that only know image inputs."""
        if not isinstance(self.datamodule, ImageDataModule):
            raise CnnlabError(
                f"{self.ckpt_path}: a {type(self.datamodule).__name__} run; cnnlab.{verb} "
                "takes image checkpoints (for tabular runs use cnnlab.verbs.evaluate)"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        dm = self.datamodule
        return (dm.in_channels, dm.image_size, dm.image_size)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W -> the float batch the model was trained on (the DataModule's
        own normalisation, in standard memory layout for exporters and other runtimes)."""
        return self.datamodule.normalize(images).contiguous()

    @torch.no_grad()
    def logits(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Model outputs for uint8 images, in batches, on the CPU in fp32."""
        outputs = [
            self.model(self.prepare(images[i : i + batch_size])).float()
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(outputs) if outputs else torch.empty(0, len(self.classes))


def load_run(ckpt_path: str | Path, overrides: list[Override] | None = None) -> LoadedRun:
    """Checkpoint -> config (+ overrides) -> DataModule and model with the trained weights."""
    path = Path(ckpt_path).expanduser()
    checkpoint = read_checkpoint(path, weights_only=True)
    cfg = apply_run_overrides(config_of_checkpoint(checkpoint, path), overrides or [])
    datamodule = build_datamodule(cfg)
    restore_datamodule_state(datamodule, checkpoint)
    model = build_model(cfg.model, datamodule)
    load_weights(model, model_state(checkpoint), path, model_name(cfg))
    model.eval()
    return LoadedRun(path, run_dir_of(path), cfg, datamodule, model)


def best_checkpoint(run_dir: Path) -> Path | None:
    """The run's best checkpoint (from metrics.json), else any non-`last` one, else last."""
    metrics = read_metrics(run_dir) or {}
    best = metrics.get("best_checkpoint")
    if best and Path(best).is_file():
        return Path(best)
    found = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    ranked = [p for p in found if p.name != "last.ckpt"] + [
        p for p in found if p.name == "last.ckpt"
    ]
    return ranked[0] if ranked else None


# ----------------------------------------------------------------------------- run dirs


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """`<run>/metrics.json`, or None if the run wrote none (failed, running, or fast_dev_run)."""
    path = run_dir / METRICS_FILE
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None


def is_run_dir(path: Path) -> bool:
    return (path / HYDRA_DIR).is_dir() or (path / METRICS_FILE).is_file()


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run dirs named directly, plus the job dirs of any multirun (sweep) dir named.

    A multirun dir holds one numbered sub-dir per job (Hydra's `hydra.sweep.subdir`); jobs
    are listed in numeric order so the report follows the sweep.
    """
    runs: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if not path.is_dir():
            raise CnnlabError(f"{path}: no such run dir")
        if is_run_dir(path):
            runs.append(path)
            continue
        jobs = [p for p in path.iterdir() if p.is_dir() and is_run_dir(p)]
        if not jobs:
            raise CnnlabError(
                f"{path}: neither a run dir (no .hydra/ or metrics.json) nor a multirun dir "
                "holding run dirs"
            )
        runs.extend(
            sorted(
                jobs,
                key=lambda p: (
                    not p.name.isdigit(),
                    int(p.name) if p.name.isdigit() else 0,
                    p.name,
                ),
            )
        )
    return list(dict.fromkeys(runs))


def read_curve(run_dir: Path, tag: str = "val/acc") -> tuple[list[float], list[float]]:
    """(epochs, values) of one logged metric, from TensorBoard event files or the CSV log.

    Epochs are read from Lightning's own `epoch` scalar at the same global step (1-based),
    so validation every n epochs lands at the right x.
    """
    tb_dir = run_dir / "tensorboard"
    if tb_dir.is_dir() and any(tb_dir.rglob("events.out.tfevents.*")):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        values: dict[int, float] = {}
        epochs: dict[int, float] = {}
        for events in sorted({p.parent for p in tb_dir.rglob("events.out.tfevents.*")}):
            accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
            accumulator.Reload()
            scalars = accumulator.Tags().get("scalars", [])
            if tag in scalars:
                values.update({e.step: e.value for e in accumulator.Scalars(tag)})
            if "epoch" in scalars:
                epochs.update({e.step: e.value for e in accumulator.Scalars("epoch")})
        if values:
            steps = sorted(values)
            xs = [epochs[s] + 1 if s in epochs else float(i + 1) for i, s in enumerate(steps)]
            return xs, [values[s] for s in steps]
    csv_file = next(iter(sorted(run_dir.glob("csv/**/metrics.csv"))), None)
    if csv_file is not None:
        with open(csv_file, newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r.get(tag) not in (None, "")]
        return [float(r["epoch"]) + 1 for r in rows], [float(r[tag]) for r in rows]
    return [], []


def fresh_dir(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`, ... : the first that does not exist yet (then created).

    Every verb writes into a new directory by default so nothing earlier is overwritten.
    """
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    candidate.mkdir(parents=True)
    return candidate


def output_dir(given: str | None, default: Path) -> Path:
    """The verb's output dir: `given` (must be new or empty), else a fresh `default`."""
    if given:
        path = Path(given).expanduser()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise CnnlabError(
                f"out_dir={path} already exists and is not empty; pick a new out_dir "
                "(or leave it unset for a fresh one)"
            )
        path.mkdir(parents=True, exist_ok=True)
        return path
    return fresh_dir(default)
