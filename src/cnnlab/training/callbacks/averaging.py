"""Weight averaging whose checkpoints evaluate as they were validated: with the average."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch import callbacks
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeightAveraging(callbacks.EMAWeightAveraging):
    """Lightning's EMA of the weights; validation and checkpoints use the average.

    A checkpoint holds the average as its `state_dict` and the raw weights beside it, for
    resuming. Lightning's callback loads the raw weights whenever it reads a checkpoint,
    so testing the best checkpoint would score weights that were never validated; here the
    raw weights are restored only when fitting (a resume), and a test scores the average.
    """

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
