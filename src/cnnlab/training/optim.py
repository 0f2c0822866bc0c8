"""Muon for any model: one optimizer, Muon on the weight matrices, SGD or AdamW on the rest.

Muon (Keller Jordan, 2024) replaces a hidden layer's update by the nearest semi-orthogonal
matrix of its momentum (a few Newton-Schulz iterations in bf16): every direction of the
layer moves at the same rate, which trains in fewer steps than SGD. It is defined for
matrices; a conv filter bank [out, in, k, k] is the matrix [out, in*k*k] (as in airbench94_muon).
Biases, BatchNorm shifts and the output layer are not hidden-layer matrices: an auxiliary
SGD or AdamW trains them.

`MuonWithAuxiliary` is ONE `torch.optim.Optimizer` holding both kinds of parameter group
(each group says its `algorithm`), so Lightning sees one optimizer: one state_dict that
checkpoints and resumes exactly, one `param_groups` list that schedulers scale and the LR
monitor reads. The Muon update is torch.optim.Muon's (tests pin it to torch's step on 2-D
weights) applied to the matrix view of each weight; the auxiliary groups run torch's own
functional SGD / AdamW.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch.optim.adamw import adamw
from torch.optim.sgd import sgd

ALGORITHMS = ("muon", "sgd", "adamw")
AUXILIARIES = ("sgd", "adamw")
# torch.optim.Muon's Newton-Schulz coefficients and epsilon (Keller Jordan's quintic).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_EPS = 1e-7
MUON_TAG = "muon"  # a parameter attribute: True / False puts it under Muon / the auxiliary


def orthogonalize(
    matrix: torch.Tensor,
    steps: int,
    coefficients: Sequence[float] = NS_COEFFICIENTS,
    eps: float = NS_EPS,
) -> torch.Tensor:
    """Newton-Schulz approximation of U V^T (matrix = U S V^T) in bf16, as torch.optim.Muon."""
    a, b, c = coefficients
    x = matrix.to(torch.bfloat16, copy=True)
    wide = x.size(0) > x.size(1)
    if wide:
        x = x.T
    x.div_(x.norm().clamp(min=eps))  # spectral norm <= 1
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if wide else x


def muon_lr_ratio(adjust_lr_fn: str | None, shape: Sequence[int]) -> float:
    """torch.optim.Muon's per-shape learning-rate factor (for the matrix view's shape)."""
    rows, cols = shape[0], shape[1]
    if adjust_lr_fn in (None, "original"):
        return math.sqrt(max(1.0, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


class MuonWithAuxiliary(torch.optim.Optimizer):
    """Parameter groups with `algorithm` muon, sgd or adamw, stepped in one `step`.

    Built by `muon(...)` (the `optim=muon` option) from a model's parameters; groups are
    complete dicts (every key their algorithm reads), so a state_dict round trip restores
    them exactly. Muon groups may also `normalize_weights`: each weight matrix is rescaled
    to norm sqrt(rows) before its step (airbench94_muon's replacement for weight decay
    under BatchNorm, where a filter's scale does not change the function).
    """

    def __init__(self, param_groups: list[dict[str, Any]]) -> None:
        for group in param_groups:
            if group.get("algorithm") not in ALGORITHMS:
                raise ValueError(f"optim: group algorithm must be one of {', '.join(ALGORITHMS)}")
        super().__init__(param_groups, defaults={})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                getattr(self, f"_{group['algorithm']}_step")(group, params)
        return loss

    def _muon_step(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
        for param in params:
            grad = param.grad.reshape(len(param), -1)  # [out, in*k*k] for conv filters
            state = self.state[param]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(grad)
            buffer = state["momentum_buffer"]
            buffer.lerp_(grad, 1 - momentum)
            update = grad.lerp(buffer, momentum) if group["nesterov"] else buffer
            update = orthogonalize(
                update, group["ns_steps"], group["ns_coefficients"], group["eps"]
            )
            if group["normalize_weights"]:
                param.mul_(math.sqrt(len(param)) / param.norm())
            param.mul_(1 - lr * decay)
            ratio = muon_lr_ratio(group["adjust_lr_fn"], grad.shape)
            param.add_(update.reshape(param.shape), alpha=-lr * ratio)

    def _sgd_step(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        buffers = [self.state[p].get("momentum_buffer") for p in params]
        sgd(
            params,
            [p.grad for p in params],
            buffers,
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            lr=group["lr"],
            dampening=0.0,
            nesterov=group["nesterov"],
            maximize=False,
        )
        if group["momentum"]:
            for param, buffer in zip(params, buffers, strict=True):
                self.state[param]["momentum_buffer"] = buffer

    def _adamw_step(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        for param in params:
            state = self.state[param]
            if not state:  # torch.optim.AdamW's initial state
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        states = [self.state[p] for p in params]
        beta1, beta2 = group["betas"]
        adamw(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            [s["step"] for s in states],
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["adam_eps"],
            maximize=False,
        )


def takes_muon(param: torch.nn.Parameter, is_output_layer: bool) -> bool:
    """Muon for hidden-layer weights: >= 2-D and not the output layer, unless tagged `muon`."""
    tag = getattr(param, MUON_TAG, None)
    if tag is not None:
        return bool(tag)
    return param.ndim >= 2 and not is_output_layer


def muon(
    params: Iterable[torch.nn.Parameter],
    lr: float = 0.02,
    momentum: float = 0.95,
    nesterov: bool = True,
    weight_decay: float = 0.0,
    ns_steps: int = 5,
    normalize_weights: bool = False,
    adjust_lr_fn: str | None = None,
    aux: str = "sgd",
    aux_lr: float = 0.05,
    aux_momentum: float = 0.9,
    aux_nesterov: bool = True,
    aux_weight_decay: float = 5e-4,
    aux_betas: Sequence[float] = (0.9, 0.999),
    aux_eps: float = 1e-8,
    muon_output_layer: bool = False,
    use_muon: bool = True,
) -> MuonWithAuxiliary:
    """The `optim=muon` option: Muon on hidden weight matrices, `aux` (sgd | adamw) on the rest.

    The output layer is the last >= 2-D parameter in the model's order (the classifier of
    every suite model); Muon's authors leave it to the auxiliary optimizer, as here, unless
    `muon_output_layer`. A parameter tagged `param.muon = True/False` goes where its tag
    says. A parameter tagged `lr_scale = s` (airbench's BatchNorm shifts) gets s times its
    group's learning rate and 1/s of its weight decay, as with `scaled_sgd`. Frozen
    parameters are kept (grouped, skipped while they get no gradient), so callbacks that
    freeze and unfreeze them keep working. `use_muon=false` gives every parameter to the
    auxiliary optimizer: the ablation of Muon with everything else unchanged.
    """
    if aux not in AUXILIARIES:
        raise ValueError(f"optim.aux must be one of {', '.join(AUXILIARIES)} (got {aux})")
    if ns_steps < 1:
        raise ValueError(f"optim.ns_steps must be >= 1 (got {ns_steps})")
    params = list(params)
    if any(isinstance(p, dict) for p in params):
        raise ValueError("optim: muon takes parameters, not parameter groups")
    matrices = [i for i, p in enumerate(params) if p.ndim >= 2]
    output_layer = None if muon_output_layer or not matrices else matrices[-1]
    keyed: dict[tuple[str, float], list[torch.nn.Parameter]] = {}
    for i, param in enumerate(params):
        algorithm = "muon" if use_muon and takes_muon(param, i == output_layer) else aux
        scale = float(getattr(param, "lr_scale", 1.0))
        if scale <= 0:
            raise ValueError("optim: a parameter's lr_scale must be > 0")
        keyed.setdefault((algorithm, scale), []).append(param)
    settings: dict[str, dict[str, Any]] = {
        "muon": {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "nesterov": nesterov,
            "ns_steps": ns_steps,
            "ns_coefficients": NS_COEFFICIENTS,
            "eps": NS_EPS,
            "adjust_lr_fn": adjust_lr_fn,
            "normalize_weights": normalize_weights,
        },
        "sgd": {
            "lr": aux_lr,
            "weight_decay": aux_weight_decay,
            "momentum": aux_momentum,
            "nesterov": aux_nesterov,
        },
        "adamw": {
            "lr": aux_lr,
            "weight_decay": aux_weight_decay,
            "betas": tuple(float(b) for b in aux_betas),
            "adam_eps": aux_eps,
        },
    }
    groups = []
    for (algorithm, scale), members in sorted(keyed.items()):
        group = {"params": members, "algorithm": algorithm, **settings[algorithm]}
        group["lr"] *= scale
        group["weight_decay"] /= scale
        groups.append(group)
    return MuonWithAuxiliary(groups)
