"""Training tricks of airbench that act on the run, not the net: Lightning callbacks.

- `Lookahead`: every `every_n_steps` optimizer steps, an exponential moving average of the
  weights is updated and *copied back* into the net (Lookahead-style, as in hlb-cifar10 and
  airbench). The decay grows as (step / total)**decay_pow, so early training moves freely
  and the end of training averages strongly. Ablate with `callbacks.lookahead=null`.
- `FreezeAfterEpochs`: stops training the named parameters after a number of epochs
  (airbench: the whitening conv's bias after 3). Ablate with `callbacks.freeze_whiten_bias=null`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class Lookahead(Callback):
    """EMA of the weights (and BatchNorm statistics), written back into the net."""

    def __init__(
        self,
        every_n_steps: int = 5,
        decay_base: float = 0.95,
        decay_pow: float = 3.0,
        start_epoch: int = 0,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"callbacks.lookahead.every_n_steps must be >= 1 ({every_n_steps})")
        if not 0.0 <= decay_base < 1.0:
            raise ValueError(f"callbacks.lookahead.decay_base must be in [0, 1) (got {decay_base})")
        self.every_n_steps = every_n_steps
        self.decay_base = decay_base
        self.decay_pow = decay_pow
        self.start_epoch = start_epoch
        self.average: dict[str, torch.Tensor] | None = None

    @staticmethod
    def _floats(module: L.LightningModule) -> dict[str, torch.Tensor]:
        return {
            name: tensor
            for name, tensor in module.model.state_dict().items()
            if tensor.is_floating_point()
        }

    def decay(self, step: int, total_steps: int) -> float:
        """Weight kept by the average at `step`: base**k * (step / total)**pow."""
        progress = min(1.0, step / max(1, total_steps))
        return self.decay_base**self.every_n_steps * progress**self.decay_pow

    @torch.no_grad()
    def _update(self, module: L.LightningModule, decay: float) -> None:
        current = self._floats(module)
        if self.average is None:
            self.average = {name: tensor.detach().clone() for name, tensor in current.items()}
            return
        for name, tensor in current.items():
            average = self.average[name]
            average.lerp_(tensor, 1.0 - decay)
            tensor.copy_(average)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = trainer.global_step
        if trainer.current_epoch >= self.start_epoch and step % self.every_n_steps == 0:
            self._update(pl_module, self.decay(step, int(trainer.estimated_stepping_batches)))
        # End every epoch on the averaged weights, before validation runs on them.
        last = batch_idx + 1 >= trainer.num_training_batches or step >= trainer.max_steps > 0
        if last and self.average is not None:
            self._update(pl_module, 1.0)

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.average = state_dict.get("average")


class FreezeAfterEpochs(Callback):
    """Set `requires_grad=False` on the named parameters from epoch `epochs` on."""

    def __init__(self, parameters: Sequence[str], epochs: int) -> None:
        if epochs < 0:
            raise ValueError(f"callbacks: FreezeAfterEpochs.epochs must be >= 0 (got {epochs})")
        self.parameters = list(parameters)
        self.epochs = epochs

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        named = dict(pl_module.named_parameters())
        missing = [name for name in self.parameters if name not in named]
        if missing:
            raise ValueError(
                f"callbacks: FreezeAfterEpochs names unknown parameters {missing}; "
                "this model has e.g. " + ", ".join(list(named)[:3])
            )
        for name in self.parameters:
            named[name].requires_grad_(trainer.current_epoch < self.epochs)
