"""Learning-rate schedules that torch does not ship as one class.

`warmup_decay` is airbench's piecewise-linear "triangle": the multiplier rises linearly from
`start` to 1 over the first `peak` fraction of the steps, then falls linearly to `end` at
the last step. airbench94: start 0.2, peak 0.23, end 0.07; airbench96: 0.2, 0.1, 0.0. A
short warm-up lets the 64x BatchNorm-bias steps settle; decaying to (near) zero at the end
is what converts the last epochs into accuracy.
"""

from __future__ import annotations

import torch


def warmup_decay_factor(
    step: int, total_steps: int, start: float, peak: float, end: float
) -> float:
    """The multiplier of the base learning rate at `step` (0-based) of `total_steps`."""
    peak_step = max(1, round(peak * total_steps))
    if step < peak_step:
        return start + (1.0 - start) * step / peak_step
    remaining = max(1, total_steps - peak_step)
    return 1.0 + (end - 1.0) * min(1.0, (step - peak_step) / remaining)


def warmup_decay(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    start: float = 0.2,
    peak: float = 0.23,
    end: float = 0.07,
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR over `total_steps` optimizer steps (filled in by the module from the trainer)."""
    if total_steps < 1:
        raise ValueError(f"scheduler: total_steps must be >= 1 (got {total_steps})")
    if not 0.0 <= peak <= 1.0:
        raise ValueError(f"scheduler.peak must be a fraction in [0, 1] (got {peak})")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_decay_factor(step, total_steps, start, peak, end)
    )
