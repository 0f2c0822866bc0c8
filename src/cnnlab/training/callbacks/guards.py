"""Stop a run that has gone wrong instead of training on, and saving, garbage."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from cnnlab.errors import NonFiniteLoss


class StopOnNonFiniteLoss(Callback):
    """The first NaN/inf training loss ends the run with one line (exit 3).

    Checked after every optimizer step, before any later validation or checkpoint: a
    diverged run never reaches a validation whose metrics could pick a "best" checkpoint,
    and last.ckpt keeps the last finite state. (Lightning's `EarlyStopping(check_finite=True)`
    only looks at the monitored validation metric, once per epoch: accuracy stays finite
    when the weights are NaN.) `trainer.detect_anomaly=true` names the operation that made
    the first NaN, at a large cost in speed: a debugging option.
    """

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or bool(torch.isfinite(loss).all()):
            return
        raise NonFiniteLoss(
            f"training loss is {float(loss.detach().float().max())} at epoch "
            f"{trainer.current_epoch + 1}, step {trainer.global_step} (batch {batch_idx + 1}); "
            "usual causes: a learning rate too high (lower optim.lr), or 16-bit overflow "
            "(trainer.precision=32-true); trainer.detect_anomaly=true names the operation"
        )
