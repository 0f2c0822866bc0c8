"""Composing the train config (and the verbs' own configs) outside `@hydra.main`.

Verbs, benchmarks and tests build runs without Hydra's main: a verb that reads runs must not
create a run directory, change logging, or refuse to start because of Hydra's output dir.
These functions compose `conf/<name>.yaml` with Hydra's compose API and leave Hydra's global
state as they found it; composition errors become one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.initialize import get_gh_backup, restore_gh_from_backup
from omegaconf import DictConfig, OmegaConf, open_dict

from cnnlab.errors import CnnlabError
from cnnlab.paths import CONFIG_DIR


def one_line(err: Exception) -> str:
    """Hydra's first line, plus the options it lists for a group that has no such option."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    if any(line.startswith("Available options") for line in lines):
        start = next(i for i, line in enumerate(lines) if line.startswith("Available options"))
        options = []
        for line in lines[start + 1 :]:
            if line.startswith("Config search path"):
                break
            options.append(line)
        text += f"; available: {', '.join(options)}"
    return text


def compose_config(
    config_name: str, overrides: Sequence[str] = (), hydra_node: bool = False
) -> DictConfig:
    """`conf/<config_name>.yaml` composed with `overrides`, leaving Hydra's global state as
    it was (a verb may run inside tests or another Hydra app); `hydra_node` keeps Hydra's
    own node, as `@hydra.main` would see it."""
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(
                config_name=config_name,
                overrides=list(overrides),
                return_hydra_config=hydra_node,
            )
    except HydraException as err:
        raise CnnlabError(f"{' '.join(overrides) or config_name}: {one_line(err)}") from None
    finally:
        restore_gh_from_backup(backup)


def compose_run_config(
    overrides: Sequence[str], output_dir: Path | str, data_dir: Path | str | None = None
) -> DictConfig:
    """The train config as `train.py` composes it, for code that builds runs without Hydra's
    main (benchmarks, tests): Hydra's runtime config is set, and the run writes to
    `output_dir` (and reads data from `data_dir`, if given)."""
    cfg = compose_config("train", overrides, hydra_node=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


def config_to_save(cfg: DictConfig) -> dict[str, Any]:
    """The resolved run config without Hydra's own node: what a checkpoint stores so that
    it can be rebuilt (and resumed, evaluated, exported) without its run dir."""
    resolved = OmegaConf.to_container(cfg, resolve=False)
    resolved.pop("hydra", None)
    return OmegaConf.to_container(OmegaConf.create(resolved), resolve=True)
