"""The composed run config as a rich tree, printed when a run starts (`print_config`)."""

from __future__ import annotations

from typing import Any

import yaml
from omegaconf import DictConfig
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

from cnnlab.config import config_to_save
from cnnlab.training.hparams import group_choices


class _TreeDumper(yaml.SafeDumper):
    """YAML with lists on one line (`channels: [32, 64]`): a shorter tree."""


_TreeDumper.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def _yaml(node: dict[str, Any]) -> Syntax:
    text = yaml.dump(node, Dumper=_TreeDumper, sort_keys=False).rstrip()
    return Syntax(text, "yaml", word_wrap=True)


def print_config_tree(cfg: DictConfig) -> None:
    """The composed run config as a tree, one branch per config group labelled with the
    option it chose (lightning-hydra-template's print_config_tree): what is about to run."""
    choices = group_choices()
    resolved = config_to_save(cfg)
    tree = Tree("config", guide_style="dim")
    tree.add(_yaml({k: v for k, v in resolved.items() if not isinstance(v, dict)}))
    for key, value in resolved.items():
        if isinstance(value, dict):
            tree.add(f"{key}: {choices[key]}" if key in choices else key).add(_yaml(value))
    Console().print(tree)
