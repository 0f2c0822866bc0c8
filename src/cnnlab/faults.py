"""Deterministic fault injection, for the reliability tests: `CNNLAB_FAULT=<phase>:<signal>[:<n>]`.

A run sends itself `<signal>` (SIGKILL, SIGTERM or SIGINT) at a named point of its life, so
each cell of the fault matrix (tests/e2e/test_fault_matrix.py) is reproducible instead of
depending on when a `kill` from outside happens to land. Phases and what `<n>` selects
(without `<n>`: the first time the phase is reached):

    mid_step                 after optimizer step n
    during_checkpoint_write  a checkpoint of global step n is fsynced under its temp name,
                             not yet renamed over the target
    epoch_end_before_val     epoch n's last training step is done, its validation not started
    during_val               after the first validation batch of epoch n
    during_test              after test batch n of the final test pass
    writing_metrics          metrics.json is written under its temp name, not yet renamed
    in_sweep                 in job n of a `-m` sweep, after the first step of its 2nd epoch
    writing_summary          job n's row is written to the sweep summary's temp file

Inert unless the variable is set: `FaultInjection` is only added to a run then, and each
explicit `fault_point` outside Lightning's loop costs one environment lookup. A signal is
sent at most once per process.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from cnnlab.errors import CnnlabError

FAULT_ENV = "CNNLAB_FAULT"
PHASES = (
    "mid_step",
    "during_checkpoint_write",
    "epoch_end_before_val",
    "during_val",
    "during_test",
    "writing_metrics",
    "in_sweep",
    "writing_summary",
)
SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT")


@dataclass(frozen=True)
class Fault:
    phase: str
    signum: signal.Signals
    n: int | None


def planned_fault() -> Fault | None:
    """The fault `CNNLAB_FAULT` asks for, or None; a malformed value is one line."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return None
    phase, _, rest = spec.partition(":")
    name, _, n = rest.partition(":")
    if phase not in PHASES or name not in SIGNALS or not (n == "" or n.isdigit()):
        raise CnnlabError(
            f"{FAULT_ENV}={spec!r} is not <phase>:<signal>[:<n>] with a phase in "
            f"{', '.join(PHASES)} and a signal in {', '.join(SIGNALS)}; unset it for a normal run"
        )
    return Fault(phase, signal.Signals[name], int(n) if n else None)


_fired = False


def fault_point(phase: str, n: int | None = None) -> None:
    """Send the planned signal if this is the planned phase (and its `n`)."""
    global _fired
    if _fired or FAULT_ENV not in os.environ:
        return
    fault = planned_fault()
    if fault is None or fault.phase != phase or (fault.n is not None and fault.n != n):
        return
    _fired = True
    os.kill(os.getpid(), fault.signum)
