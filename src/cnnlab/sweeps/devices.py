"""One GPU per parallel local job: round-robin over the visible CUDA devices.

Jobs that run side by side on one machine (`launcher=joblib`, `cnnlab search workers=N`) all
see every GPU, and Lightning's `devices: 1` means cuda:0 in each of them. Job n instead gets
visible device n % count:

- joblib jobs through `trainer.devices: ${cnnlab.job_devices:${trainer.accelerator}}`
  (conf/launcher/joblib.yaml), resolved inside the job, where Hydra knows its number. It is
  a `trainer.devices` value rather than CUDA_VISIBLE_DEVICES because joblib reuses its worker
  processes: a variable set after a previous job initialised CUDA in that process would be
  ignored.
- search workers are fresh processes, so each is started with CUDA_VISIBLE_DEVICES naming
  its one device (`worker_environment`).
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf

CUDA_ACCELERATORS = ("auto", "gpu", "cuda")


def job_number() -> int:
    """This job's number in a Hydra multirun (`hydra.job.num`); 0 outside one."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 0
    num = OmegaConf.select(HydraConfig.get(), "job.num", default=None, throw_on_missing=False)
    return int(num) if isinstance(num, int) else 0


def job_devices(accelerator: str = "auto") -> int | list[int]:
    """`trainer.devices` for one job: `[job % visible GPUs]` when it trains on CUDA, else 1."""
    import torch

    count = torch.cuda.device_count() if accelerator in CUDA_ACCELERATORS else 0
    return [job_number() % count] if count else 1


def visible_devices() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [d.strip() for d in given.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_environment(worker: int, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of local worker process `worker`: its own GPU when there are several."""
    env = dict(os.environ if env is None else env)
    devices = visible_devices()
    if len(devices) > 1:
        env["CUDA_VISIBLE_DEVICES"] = devices[worker % len(devices)]
    return env


def register_resolvers() -> None:
    """`${cnnlab.job_devices:<accelerator>}`; registered on `import cnnlab` (torch is imported
    only when a config resolves it)."""
    if not OmegaConf.has_resolver("cnnlab.job_devices"):
        OmegaConf.register_new_resolver("cnnlab.job_devices", job_devices)
