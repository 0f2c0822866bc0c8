"""Config values checked before anything is built or trained.

Each rule names the key, what it must be and an example fix, so the user sees one line
such as `optim.lr must be > 0 (got -0.1); e.g. optim.lr=0.01`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cnnlab.errors import CnnlabError

Rule = tuple[str, Callable[[Any], bool], str, str]

RULES: list[Rule] = [
    ("optim.lr", lambda v: v > 0, "> 0", "optim.lr=0.01"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0", "optim.weight_decay=5e-4"),
    ("optim.momentum", lambda v: 0 <= v < 1, "in [0, 1)", "optim.momentum=0.9"),
    ("data.batch_size", lambda v: v >= 1, ">= 1", "data.batch_size=128"),
    ("data.val_size", lambda v: v >= 1, ">= 1", "data.val_size=5000"),
    ("data.num_workers", lambda v: v >= 0, ">= 0", "data.num_workers=2"),
    ("trainer.max_epochs", lambda v: v >= 1, ">= 1", "trainer.max_epochs=10"),
    ("module.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)", "module.label_smoothing=0.1"),
    (
        "callbacks.stop_at",
        lambda v: 0 < v <= 1,
        "in (0, 1] (a val/acc fraction)",
        "callbacks.stop_at=0.85",
    ),
    ("seed", lambda v: v >= 0, ">= 0", "seed=42"),
]


def validate_config(cfg: DictConfig) -> None:
    """Raise CnnlabError on the first value that would make training meaningless or crash."""
    for key, ok, requirement, example in RULES:
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CnnlabError(
                f"{key} must be a number {requirement} (got {value!r}); e.g. {example}"
            )
        if not ok(value):
            raise CnnlabError(f"{key} must be {requirement} (got {value}); e.g. {example}")
