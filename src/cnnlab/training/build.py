"""Building the run's objects from a composed config: one `_target_` per group option.

Hydra wraps errors raised inside a target in its own InstantiationException; `build`
unwraps them so a CnnlabError (or a plain ValueError about an argument) reaches the user
as one line naming the config group.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from cnnlab.errors import CnnlabError
from cnnlab.machine import cpu_has_bf16


def build(node: Any, group: str, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate(node, **kwargs)` with user-facing errors."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except Exception as err:
        cause: BaseException | None = err
        while cause is not None:
            if isinstance(cause, CnnlabError):
                raise CnnlabError(str(cause)) from None
            if isinstance(cause, (ValueError, TypeError)) and cause is not err:
                raise CnnlabError(f"{group}: {cause}") from None
            if isinstance(cause, ImportError) and cause is not err:  # an optional package
                target = node.get("_target_", node)
                raise CnnlabError(f"{group}: cannot build {target}: {cause}") from None
            cause = cause.__cause__ or cause.__context__
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CnnlabError(f"{group}: cannot build {node.get('_target_', node)} ({first})") from None


CPU_BF16_ENV = "CNNLAB_CPU_BF16"


def cpu_bf16() -> bool:
    """Whether `precision: auto` trains in bf16-mixed on the CPU.

    `CNNLAB_CPU_BF16=1` forces bf16-mixed and `=0` fp32 whatever the CPU has, so one machine
    can run (and CI can test) what `auto` does on the other CPU kind; unset or empty: detect.
    """
    value = os.environ.get(CPU_BF16_ENV, "").strip()
    if value == "":
        return cpu_has_bf16()
    if value not in ("0", "1"):
        raise CnnlabError(
            f"{CPU_BF16_ENV}={value!r} is not valid: use 1 (bf16-mixed on CPU), "
            "0 (fp32 on CPU) or leave it unset (detect native bf16)"
        )
    return value == "1"


def resolve_precision(accelerator: str, precision: Any) -> Any:
    """Turn `precision: auto` into the precision that fits the hardware Lightning will pick."""
    if precision != "auto":
        return precision
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if accelerator in ("auto", "mps") and torch.backends.mps.is_available():
        return "32-true"
    return "bf16-mixed" if cpu_bf16() else "32-true"


def build_list(node: DictConfig | None, group: str) -> list[Any]:
    """Instantiate every `_target_` entry of a dict-shaped group (callbacks, logger)."""
    if not node:
        return []
    return [
        build(entry, f"{group}.{key}")
        for key, entry in node.items()
        if isinstance(entry, DictConfig) and "_target_" in entry
    ]


def build_model(node: DictConfig, datamodule: Any) -> torch.nn.Module:
    """The model of a `model` config node, shaped by what the data gives every model
    (`datamodule.model_kwargs()`: input shape and class count, or feature and output
    counts). A model that cannot take those is one line naming both sides."""
    given = datamodule.model_kwargs()
    target = str(OmegaConf.select(node, "_target_", default=""))
    try:
        parameters = inspect.signature(hydra.utils.get_class(target)).parameters
    except Exception:
        parameters = None  # reported by build() with the target's name
    if parameters is not None and not any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    ):
        refused = [name for name in given if name not in parameters]
        if refused:
            raise CnnlabError(
                f"model {target.rsplit('.', 1)[-1]} does not fit this data: it takes no "
                f"{', '.join(refused)}; pick a model made for it (e.g. model=mlp for tabular "
                "data, as experiment=tabular does)"
            )
    model = build(node, "model", **given)
    check_train_sizes_fit(model, datamodule, target.rsplit(".", 1)[-1])
    return model


def check_train_sizes_fit(model: torch.nn.Module, datamodule: Any, name: str) -> None:
    """With progressive resizing on, one tiny forward per smaller size: a model whose head
    expects the full size fails here in one line, not at its first training step."""
    sizes = sorted({s for s in getattr(datamodule, "train_sizes", []) if s}, reverse=True)
    if not sizes:
        return
    was_training = model.training
    model.eval()  # no BatchNorm statistics touched
    try:
        with torch.no_grad():
            for size in sizes:
                try:
                    model(torch.zeros(2, datamodule.in_channels, size, size))
                except Exception as err:
                    raise CnnlabError(
                        f"model {name} cannot train on {size}x{size} images (data.train_sizes="
                        f"{list(datamodule.train_sizes)}): {str(err).splitlines()[0]}; use a "
                        "model that ends in a global pool (e.g. model=airbench) or larger sizes"
                    ) from None
    finally:
        model.train(was_training)
