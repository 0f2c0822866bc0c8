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
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from cnnlab.checkpoints.io import LAST
from cnnlab.errors import CnnlabError


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

    Written every `every_n_train_steps` optimizer steps (bounds what a kill -9 loses), after
    every validation, at the end of training, and on SIGTERM/SIGINT. (Lightning 2.6's
    `ModelCheckpoint(save_last=True)` only refreshes last.ckpt when a top-k file is saved, so
    after an epoch without improvement it is stale; a second ModelCheckpoint cannot save on
    both steps and epochs.) A `Checkpoint` subclass, so Lightning runs it after the other
    callbacks (early-stopping counters are updated before they are saved).

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
        self._previous_sigint: Any = None

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        # The full state (optimizer, loops, callbacks) is what a resume needs.
        trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0:
            self._save(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    # -- signals ---------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signal = None
        if _main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.signal = signal.SIGINT
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl+C aborts
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
            raise KeyboardInterrupt

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
            self._save(trainer)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def exit_after_interrupt(trainer: L.Trainer, run_dir: Path) -> None:
    """After SIGTERM/SIGINT saved last.ckpt: say how to continue, exit 128+signal like a shell."""
    callback = next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
    signum = callback.signal if callback is not None and callback.signal else signal.SIGTERM
    if trainer.is_global_zero:
        saved = f"saved {callback.path}; " if callback is not None else ""
        print(
            f"cnnlab: interrupted ({signum.name}): {saved}continue with the same command "
            f"plus hydra.run.dir={run_dir} resume=auto",
            file=sys.stderr,
            flush=True,
        )
    raise SystemExit(128 + int(signum))
