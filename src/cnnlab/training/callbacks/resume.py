"""What a resumed run needs beyond Lightning's own checkpoint: an always-current last.ckpt
and the global RNG state.

Lightning restores model, optimizer, scheduler, loop counters and callbacks; the data order
and augmentation stream come back through the datamodule's state_dict (see
`cnnlab.data.sampling`), and the global RNG that dropout draws from through `GlobalRngState`.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from cnnlab.checkpoints.io import LAST
from cnnlab.errors import CnnlabError

SHOULD_STOP_KEY = "cnnlab_should_stop"  # trainer.should_stop at save time (early stopping)
PENDING_KEY = "cnnlab_validation_pending"  # saved as "training done, validation not started"


class GlobalRngState(Callback):
    """The global RNGs (torch, CUDA, numpy, random) in every checkpoint, restored at train start.

    Dropout draws from torch's global RNG, so without this a resumed run would drop different
    units than the uninterrupted one. Restored at `on_train_start` (not at load time) so that
    nothing between the restore and the first resumed batch can draw from it. The state is the
    one of the process that saves (rank 0); exact resume is a single-process guarantee.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            # numpy's state as plain Python values: loadable with torch.load(weights_only=True).
            "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state, self._pending = self._pending, None
        if state is None:
            return
        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        random.setstate(_as_tuples(state["python"]))
        if "cuda" in state and torch.cuda.is_available():
            with contextlib.suppress(RuntimeError):  # a different GPU count: keep the fresh seeds
                torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """random.setstate needs nested tuples; some round trips turn them into lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


class LastCheckpoint(Checkpoint):
    """`<dirpath>/last.ckpt` is always the latest resumable state: what `resume=auto` continues.

    Each file it writes means "resume re-runs whatever phase was in progress, from its
    start", so a resumed run ends exactly where an uninterrupted one does:

    - after optimizer step k with training batches of the epoch left: every
      `every_n_train_steps` steps (bounds what a kill -9 loses), and on SIGTERM/SIGINT;
    - on the last step before a validation (when it is a save step), and on SIGTERM/SIGINT
      during validation: written as "training done, validation not started", so the
      resumed fit runs that whole validation, then the epoch-end hooks (EarlyStopping,
      epoch schedulers);
    - after a whole epoch: at the start of the next one, at the end of training, and on
      SIGTERM/SIGINT that arrives after the epoch's validation.

    Lightning (2.6) itself would resume a file saved on the epoch's last step past that
    epoch's validation, and one saved during or after validation without `val/acc`
    (EarlyStopping fails); a mid-validation position cannot be resumed at all (the metric
    state of the batches done is not saved). Hence the loop-counter rewrites below, and the
    plateau-schedule step that Lightning skips at the end of a resumed epoch.

    `trainer.should_stop` (early stopping) is saved too: a run that stopped early and was
    killed during its final test must not train on when it is resumed.

    (Lightning's `ModelCheckpoint(save_last=True)` refreshes last.ckpt only with a top-k
    save.) A `Checkpoint` subclass, so Lightning runs it after the other callbacks
    (early-stopping counters are updated before they are saved).

    Signals: Lightning turns SIGTERM (`kill`, schedulers, preemption) into a SIGTERMException
    after the running batch; the first Ctrl+C is routed the same way, so both stop at a
    consistent state that resumes exactly. A second Ctrl+C aborts at once, without saving.
    """

    def __init__(self, dirpath: str | os.PathLike, every_n_train_steps: int | None = None) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise CnnlabError(
                f"callbacks.save_every_n_steps must be >= 1 or null (got {every_n_train_steps})"
            )
        self.path = Path(dirpath) / LAST
        self.every_n_train_steps = every_n_train_steps
        self.signal: signal.Signals | None = None
        self.saved_on_interrupt = False
        self._previous_sigint: Any = None
        self._saved_step: int | None = None
        self._rewrite: Callable[[Counters], None] | None = None  # set while it saves
        self._restored_should_stop = self._restored_pending = False

    def _save(self, trainer: L.Trainer, rewrite: Callable[[Counters], None] | None = None) -> bool:
        if trainer.fast_dev_run or trainer.sanity_checking or trainer.state.fn != "fit":
            return False
        self._rewrite = rewrite or _as_is
        try:
            trainer.save_checkpoint(self.path, weights_only=False)  # the full state resumes
        finally:
            self._rewrite = None
        # A "validation pending" file is superseded at the next epoch start; others are not.
        self._saved_step = None if rewrite is _as_validation_pending else trainer.global_step
        return True

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if not self.every_n_train_steps or trainer.global_step % self.every_n_train_steps:
            return
        next_phase = _after_this_batch(trainer)
        if next_phase == "train":
            self._save(trainer)
        elif next_phase == "validation":
            self._save(trainer, rewrite=_as_validation_pending)
        # "epoch_end" without validation: the next epoch's start saves the finished epoch.

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Restored (or 0): nothing new to save yet, unless the file was "validation pending".
        self._saved_step = None if self._restored_pending else trainer.global_step
        if self._restored_should_stop:
            trainer.should_stop = True  # stopped early before: the fit loop ends at once
        self._restored_should_stop = self._restored_pending = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step != self._saved_step:
            self._save(trainer, rewrite=_as_previous_epoch_end)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch_loop = trainer.fit_loop.epoch_loop
        if trainer.fit_loop.restarting and epoch_loop._num_ready_batches_reached():
            # Lightning does not step plateau schedules at the end of an epoch resumed
            # mid-way (it assumes the metrics are gone); here validation has run, so step
            # them as the uninterrupted run does.
            epoch_loop.update_lr_schedulers("epoch", update_plateau_schedulers=True)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._rewrite is None:
            return  # ModelCheckpoint's files keep Lightning's own counters
        checkpoint[SHOULD_STOP_KEY] = bool(trainer.should_stop)
        checkpoint[PENDING_KEY] = self._rewrite is _as_validation_pending
        self._rewrite(checkpoint["loops"]["fit_loop"])

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._restored_should_stop = bool(checkpoint.get(SHOULD_STOP_KEY, False))
        self._restored_pending = bool(checkpoint.get(PENDING_KEY, False))

    # -- signals ---------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signal = None
        self.saved_on_interrupt = False
        if _main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.signal = signal.SIGINT
        signal.signal(signal.SIGINT, _abort)  # a second Ctrl+C aborts
        print(
            "\ncnnlab: interrupt: finishing this batch and saving a checkpoint "
            "(Ctrl+C again aborts without saving)",
            file=sys.stderr,
            flush=True,
        )
        handler = signal.getsignal(signal.SIGTERM)  # Lightning's: stop after the running batch
        if callable(handler):
            handler(signal.SIGTERM, frame)
        else:
            raise Interrupted(signal.SIGINT)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None and _main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
        self._previous_sigint = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_sigint()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_sigint()
        if isinstance(exception, SIGTERMException):
            self.signal = self.signal or signal.SIGTERM
            # Stopped inside validation: its batches so far are not kept, it re-runs whole.
            rewrite = _as_validation_pending if trainer.validating else None
            self.saved_on_interrupt = self._save(trainer, rewrite=rewrite)


# -- loop counters of a saved fit ---------------------------------------------------------
Counters = dict[str, Any]


def _after_this_batch(trainer: L.Trainer) -> str:
    """What follows the training batch just done: "train", "validation" or "epoch_end"."""
    loop = trainer.fit_loop.epoch_loop
    done = loop.batch_progress.current.ready
    epoch_end = loop.batch_progress.is_last_batch or done >= trainer.num_training_batches
    every = trainer.val_check_batch
    val_check = epoch_end if not isinstance(every, int) or every < 1 else done % every == 0
    num_val = trainer.num_val_batches
    has_val = sum(num_val) if isinstance(num_val, list) else num_val
    check_every = trainer.check_val_every_n_epoch
    if (
        val_check
        and trainer.enable_validation
        and has_val
        and (check_every is None or (trainer.current_epoch + 1) % check_every == 0)
    ):
        return "validation"
    return "epoch_end" if epoch_end else "train"


def _as_is(fit_loop: Counters) -> None:
    """Lightning's counters resume this state exactly (mid-epoch, or after a whole epoch)."""


def _as_validation_pending(fit_loop: Counters) -> None:
    """Counters meaning: the training batches before this validation are done, the validation
    has started but not finished a batch. Lightning resumes that by running the whole
    validation (its "restarted mid-evaluation" case with nothing done), then what follows."""
    train = fit_loop["epoch_loop.batch_progress"]
    for counts in (train["total"], train["current"]):
        counts["completed"] = counts["processed"]  # the last batch's end hooks are done
    val = fit_loop["epoch_loop.val_loop.batch_progress"]
    for counts in (val["total"], val["current"]):
        counts.update(ready=1, started=1, processed=0, completed=0)
    val["is_last_batch"] = False


def _as_previous_epoch_end(fit_loop: Counters) -> None:
    """Saved at the start of an epoch, Lightning has already counted the new epoch as "ready";
    nothing else happened since the previous epoch ended. Undo that count: the file is the
    end-of-epoch state, from which a fresh epoch follows."""
    for counts in fit_loop["epoch_progress"].values():
        counts["ready"] -= 1


class Interrupted(BaseException):
    """SIGTERM/SIGINT outside the fit loop (setup, the final test, writing results): stop now;
    `resume=auto` re-runs that phase. A BaseException, so no `except Exception` swallows it."""

    def __init__(self, signum: signal.Signals) -> None:
        super().__init__(signum.name)
        self.signum = signum


def _abort(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum))


@contextlib.contextmanager
def interrupts_stop_at_once(
    *signums: signal.Signals,
) -> Iterator[None]:
    """`signums` (default SIGTERM and SIGINT) raise `Interrupted` in this block."""
    if not _main_thread():
        yield
        return
    chosen = signums or (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, _abort) for s in chosen}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def exit_after_interrupt(trainer: L.Trainer, run_dir: Path) -> NoReturn:
    """After SIGTERM/SIGINT stopped fit: say what was kept and how to continue."""
    callback = next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
    signum = callback.signal if callback is not None and callback.signal else signal.SIGTERM
    if callback is None:
        state = "no last checkpoint is configured (callbacks.last_checkpoint)"
    elif callback.saved_on_interrupt:
        state = f"saved {callback.path} (step {trainer.global_step})"
    elif callback.path.is_file():
        state = f"kept {callback.path}, the latest saved state"
    else:
        state = "nothing was trained yet"
    exit_interrupted(signum, run_dir, state, trainer.is_global_zero)


def exit_interrupted(
    signum: signal.Signals, run_dir: Path, state: str, report: bool = True
) -> NoReturn:
    """One line saying what was kept and how to continue; exit 128+signal, like a shell."""
    if report:
        print(
            f"cnnlab: interrupted ({signum.name}): {state}; continue with the same command "
            f"plus hydra.run.dir={run_dir} resume=auto",
            file=sys.stderr,
            flush=True,
        )
    raise SystemExit(128 + int(signum))
