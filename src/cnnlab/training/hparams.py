"""The run's hyperparameters in every logger, so runs can be compared by what they did:
TensorBoard's HPARAMS tab, the CSV logger's hparams.yaml, MLflow params, the W&B config.

What is logged is the resolved run config, flattened (`optim.lr`, `data.batch_size`), plus the
option each config group chose (`model: simple_cnn`) and the run's `tags`. Keys that say where
a run went rather than what it did (paths, Hydra's own node, the loggers) are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from cnnlab.config import config_to_save
from cnnlab.paths import CONFIG_DIR

Value = str | int | float | bool
NOT_HYPERPARAMETERS = ("hydra", "paths", "logger", "trainer.plugins")
PATH_KEYS = ("dirpath", "save_dir", "data_dir", "default_root_dir", "ckpt_path")


def _skipped(key: str) -> bool:
    return (
        any(key == p or key.startswith(f"{p}.") for p in NOT_HYPERPARAMETERS)
        or key.rsplit(".", 1)[-1] in PATH_KEYS
    )


def _value(value: Any) -> Value:
    """A value every logger accepts: TensorBoard's hparams take str, int, float and bool."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "null"
    return json.dumps(value)  # lists: `[0.4914, 0.4822, 0.4465]`


def flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Value]:
    flat: dict[str, Value] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if _skipped(name):
            continue
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = _value(value)
    return flat


def group_choices() -> dict[str, str]:
    """`model: simple_cnn`, `experiment: quickstart`, ...: the options Hydra composed."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {
        str(group): str(option)
        for group, option in choices.items()
        if option is not None
        and "/" not in str(group)
        # an optional group whose file is absent (local: default) chose nothing
        and (CONFIG_DIR / str(group) / f"{option}.yaml").is_file()
    }


def run_hparams(cfg: DictConfig) -> dict[str, Value]:
    """The hyperparameters of a composed run config, flat, with values loggers accept."""
    params: dict[str, Value] = {k: v for k, v in group_choices().items() if not _skipped(k)}
    params.update(flatten(config_to_save(cfg)))
    params["tags"] = ", ".join(str(t) for t in cfg.get("tags") or [])
    return params


@rank_zero_only
def log_hyperparameters(
    loggers: Iterable[Logger], params: dict[str, Value], compared_on: Sequence[str]
) -> None:
    """`log_hyperparams` on every logger. TensorBoard's HPARAMS tab lists only metrics the
    hparams summary names, and Lightning's TensorBoardLogger would also write placeholder
    values under those names (a false point on the val/acc curve): the summary is written
    here with the metric names alone; the tab then shows each metric's last logged value."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            from torch.utils.tensorboard.summary import hparams

            logger.hparams.update(params)  # hparams.yaml beside the event files
            writer = logger.experiment._get_file_writer()
            for summary in hparams(params, dict.fromkeys(compared_on, 0.0)):
                writer.add_summary(summary)
            logger.experiment.flush()
        else:
            logger.log_hyperparams(params)
