"""Config values checked before anything is built, read or trained: all checks in one place.

Each rule names the key, what it must be and an example fix, so the user sees one line
such as `optim.lr must be > 0 (got -0.1); e.g. optim.lr=0.01`. Rules that depend on the
dataset (its training-set size, its channels) read them from the data class the config
names, so they hold before any file is opened.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from cnnlab.data.base import LOADERS, ImageDataModule, check_train_sizes
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
    (
        "scheduler.scheduler.step_size",
        lambda v: v >= 1,
        ">= 1 (epochs between lr drops)",
        "scheduler.scheduler.step_size=10",
    ),
    ("scheduler.scheduler.T_max", lambda v: v >= 1, ">= 1", "scheduler.scheduler.T_max=10"),
]
# Top-level on/off keys: a typo such as `compile=yes` would otherwise read as true.
SWITCHES = ("channels_last", "keep_freed_memory", "compile", "test", "print_config")
# Words torch's optimizer/scheduler errors use for a config key (others use the key itself).
KEY_WORDS = {"lr": "learning rate", "betas": "beta", "eps": "epsilon"}
# A schedule whose length is filled in from the trainer (OneCycle) gets this one to try.
TRIAL_STEPS = 10


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
    for key in SWITCHES:
        value = cfg.get(key)
        if value is not None and not isinstance(value, bool):
            raise CnnlabError(f"{key} must be true or false (got {value!r}); e.g. {key}=false")
    if OmegaConf.select(cfg, "data") is not None:
        validate_folds(cfg.data)
        validate_data(cfg.data)
    validate_optimization(cfg)


def validate_optimization(cfg: DictConfig) -> None:
    """Build the optimizer and scheduler once, on a dummy parameter, and take a few steps.

    A value that torch only rejects when it builds or first steps them (`optim.betas=[2,3]`,
    a negative momentum, a zero `step_size`) then ends in one line naming the key, before
    any data is read, instead of a traceback after training has started.
    """
    optim = OmegaConf.select(cfg, "optim")
    if not isinstance(optim, DictConfig) or "_target_" not in optim:
        return
    parameter = torch.nn.Parameter(torch.zeros(1))
    try:
        optimizer = hydra.utils.instantiate(optim)(params=[parameter])
    except Exception as err:
        raise CnnlabError(_refusal("optim", optim, err)) from None
    node = OmegaConf.select(cfg, "scheduler.scheduler")
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    try:
        factory = hydra.utils.instantiate(node)
        kwargs: dict[str, Any] = {}
        if (
            "total_steps" in inspect.signature(factory).parameters
            and getattr(factory, "keywords", {}).get("total_steps") is None
        ):
            kwargs["total_steps"] = TRIAL_STEPS
        scheduler = factory(optimizer=optimizer, **kwargs)
        plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "lr_scheduler.step() before optimizer.step()"
            for _ in range(3):
                optimizer.step()
                scheduler.step(0.5) if plateau else scheduler.step()
    except Exception as err:
        raise CnnlabError(_refusal("scheduler.scheduler", node, err)) from None


def _refusal(group: str, node: DictConfig, err: Exception) -> str:
    """`<group>.<key>=<value> is refused by <target>: <torch's reason>`, naming the key
    torch's message is about (else every value of the node)."""
    cause: BaseException = err
    while cause.__cause__ is not None:  # Hydra wraps what the target raised
        cause = cause.__cause__
    reason = (str(cause).strip().splitlines() or [""])[0]
    reason = f"{type(cause).__name__}: {reason}" if not isinstance(cause, ValueError) else reason
    target = str(node.get("_target_", group))
    values = {k: v for k, v in node.items() if not str(k).startswith("_")}
    text = reason.lower()
    for key, value in values.items():
        if str(key).lower() in text or KEY_WORDS.get(str(key), "\0") in text:
            return f"{group}.{key}={value} is refused by {target}: {reason}"
    settings = ", ".join(f"{group}.{k}={v}" for k, v in values.items())
    return f"{group} ({target}) fails on its first steps: {reason}; check {settings}"


def validate_folds(data: DictConfig) -> None:
    """k-fold cross-validation: `data.folds` >= 2 (null: the usual split) and `data.fold` one
    of its folds. With folds set, the fold is the validation split: val_size / val_fraction
    are not used (and not refused: every data config sets them)."""
    folds, fold = data.get("folds"), data.get("fold")
    if folds is None:
        if fold is not None:
            raise CnnlabError(
                f"data.fold={fold} needs data.folds (k-fold cross-validation); "
                "e.g. data.folds=5 data.fold=2"
            )
        return
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise CnnlabError(
            f"data.folds must be an integer >= 2 or null (got {folds!r}); e.g. data.folds=5"
        )
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise CnnlabError(
            f"data.fold must be one of 0..{folds - 1} for data.folds={folds} (got {fold!r}); "
            f"sweep them with data.fold={','.join(map(str, range(folds)))}"
        )


def validate_data(data: DictConfig) -> None:
    """The image-data rules that need the dataset's own facts (sizes, channels)."""
    try:
        data_class = hydra.utils.get_class(str(data.get("_target_")))
    except Exception:
        return  # an unknown target is reported, with its name, when it is built
    if not (isinstance(data_class, type) and issubclass(data_class, ImageDataModule)):
        return
    name, train_size = data_class.name, data_class.train_size
    val_size = data.get("val_size")
    if isinstance(val_size, int) and not 1 <= val_size < train_size:
        raise CnnlabError(
            f"data.val_size must be between 1 and {train_size - 1} for {name} (got {val_size}): "
            f"validation is split from the {train_size} training images; e.g. data.val_size=5000"
        )
    channels = data_class.in_channels
    mean, std = list(data.get("mean", [])), list(data.get("std", []))
    if len(mean) != channels or len(std) != channels or min(std, default=0) <= 0:
        raise CnnlabError(
            f"data.mean / data.std need {channels} value(s) each, std > 0, for {name} "
            f"(got {mean} / {std})"
        )
    check_train_sizes(data.get("train_sizes"), data_class.image_size)
    loader = data.get("loader", "device")
    if loader not in LOADERS:
        raise CnnlabError(
            f"data.loader must be one of {', '.join(LOADERS)} (got {loader}); "
            "e.g. data.loader=device"
        )
