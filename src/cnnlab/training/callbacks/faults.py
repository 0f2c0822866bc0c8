"""The Lightning side of `cnnlab.faults`: the fault points inside fit and test."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from cnnlab.faults import fault_point, planned_fault


def fault_injection() -> list[Callback]:
    """`[FaultInjection()]` when `CNNLAB_FAULT` is set, else nothing (no per-batch cost)."""
    return [FaultInjection()] if planned_fault() is not None else []


def _sweep_job() -> int | None:
    from cnnlab.errors import in_multirun

    if not in_multirun():
        return None
    from hydra.core.hydra_config import HydraConfig

    return int(HydraConfig.get().job.num)


class FaultInjection(Callback):
    """Calls `fault_point` at the phases of fit and test that `CNNLAB_FAULT` can name."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        fault_point("mid_step", trainer.global_step)
        loop = trainer.fit_loop.epoch_loop
        if trainer.current_epoch == 1 and loop.batch_progress.current.ready == 1:
            job = _sweep_job()
            if job is not None:
                fault_point("in_sweep", job)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            fault_point("epoch_end_before_val", trainer.current_epoch)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking and batch_idx == 0:
            fault_point("during_val", trainer.current_epoch)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        fault_point("during_test", batch_idx)
