"""Optimizers beyond torch's own: SGD with per-parameter learning-rate multipliers.

Models tag parameters that want a different step size with an `lr_scale` attribute (the
optimizer factory only receives `module.parameters()`, so the tag travels with the
parameter). airbench tags its BatchNorm biases with 64: with frozen BatchNorm scales those
biases are the only affine parameters, and a 64x step lets them keep up.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def scaled_sgd(
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 0.0,
    dampening: float = 0.0,
) -> torch.optim.SGD:
    """SGD where a parameter tagged `lr_scale = s` gets `lr * s` and `weight_decay / s`.

    Dividing the weight decay keeps the decay per step (lr x weight_decay) the same for
    every parameter: the scale speeds up learning without strengthening the decay
    (airbench's "decoupled" weight decay). Untagged parameters form the default group.
    """
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for param in params:  # frozen ones too: SGD skips them while they get no gradient
        if isinstance(param, dict):
            raise ValueError("optim: scaled_sgd takes parameters, not parameter groups")
        groups.setdefault(float(getattr(param, "lr_scale", 1.0)), []).append(param)
    if any(scale <= 0 for scale in groups):
        raise ValueError("optim: a parameter's lr_scale must be > 0")
    param_groups = [
        {"params": members, "lr": lr * scale, "weight_decay": weight_decay / scale}
        for scale, members in sorted(groups.items())
    ]
    return torch.optim.SGD(
        param_groups,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        dampening=dampening,
    )
