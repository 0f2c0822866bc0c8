"""DDP with Hydra: what works where.

- `trainer=ddp` (GPUs) / `trainer=ddp_cpu` (2 CPU processes, gloo): Lightning's default DDP
  launcher re-runs `train.py` once per extra process, with the parent's `hydra.run.dir`, so
  all ranks share one run dir (RefuseExistingRunDir lets those children in).
- Under SLURM or torchrun the processes are created outside Lightning (one task per GPU);
  nothing is re-run.
- Inside a *local* Hydra multirun that re-run would start the whole sweep again in every
  process, so it is refused with one line; sweep DDP jobs with the SLURM launcher.

Metrics are exact under DDP: the datamodule shards evaluation sets without padding
(`cnnlab.data.sampling`) and the module logs torchmetrics objects (synced sums), so a
2-process evaluation equals a 1-process one.
"""

from __future__ import annotations

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from cnnlab.errors import CnnlabError


def refuse_script_relaunch_in_multirun(trainer: L.Trainer) -> None:
    """One line instead of a sweep that forks itself (see the module docstring)."""
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if multirun and isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher):
        raise CnnlabError(
            "trainer=ddp inside a local multirun would start the whole sweep in every process; "
            "run DDP jobs as single runs, or sweep them with launcher=slurm (one task per GPU)"
        )
