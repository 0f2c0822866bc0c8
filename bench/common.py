"""Shared by the bench/ scripts: the machine, the command, the load, and the JSON record.

Every benchmark prints its figures and writes one JSON file holding the machine it ran on
(with its CPU kind: a figure from an AVX2 CPU, where `precision: auto` is fp32, says nothing
about a bf16 CPU, where it is bf16-mixed), the exact command, the load average before and
after (other processes on a shared CPU make timings slower, never faster: the load shows
how much), a gauge of the CPU's speed before and after (a VM's host can halve it with the
load average unchanged), and the figures.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch

from cnnlab.checkpoints.atomic import write_json
from cnnlab.machine import cpu_has_bf16, cpu_model, isa_limits
from cnnlab.training.build import CPU_BF16_ENV, cpu_bf16, resolve_precision

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def cpu_kind() -> str:
    """The CPU's vector ISA as torch dispatches it (the benchmarks' label; the study's wording is
    `cnnlab.machine.cpu_kind`), plus `bf16` when bf16 math is native:
    "AVX-512 bf16" (auto: bf16-mixed), "AVX2" or "AVX-512" (auto: fp32)."""
    capability = torch.backends.cpu.get_cpu_capability()
    isa = {"AVX512": "AVX-512", "AVX2": "AVX2"}.get(capability, capability)
    return f"{isa} bf16" if cpu_has_bf16() else isa


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_kind": cpu_kind(),
        "cpu_native_bf16": cpu_has_bf16(),
        # ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA as set: this CPU running another kind's kernels.
        "isa_limits": isa_limits() or None,
        # CNNLAB_CPU_BF16 as set (null: detected), and what `precision: auto` does on this CPU.
        "cpu_bf16_override": os.environ.get(CPU_BF16_ENV) or None,
        "cpu_auto_precision": "bf16-mixed" if cpu_bf16() else "32-true",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_speed(seconds: float = 0.5) -> dict[str, float]:
    """The CPU's speed right now: matmul throughput (bf16 where native, else fp32) and memory
    bandwidth, on the benchmark's threads, in about `seconds` each.

    On a shared VM these move while the load average stays flat (one 2-core VM read 0.65 to
    1.34 bf16 TFLOP/s within an hour), so two timings compare only at similar readings.
    """
    dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
    stream = torch.zeros(64_000_000)  # 256 MB: larger than any cache
    a @ b  # first call: thread pool and kernel selection
    readings = {}
    for name, work, op in (
        ("matmul_tflops", 2 * 1024**3 / 1e12, lambda: a @ b),
        ("memory_gb_s", 2 * stream.numel() * 4 / 1e9, lambda: stream.add_(1.0)),
    ):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            op()
            count += 1
        readings[name] = round(work * count / elapsed, 3)
    return {"matmul_dtype": str(dtype).removeprefix("torch."), **readings}


class Record:
    """Collects one benchmark run and writes it as JSON."""

    def __init__(self, name: str, out: str | None = None) -> None:
        self.name = name
        self.path = Path(out) if out else RESULTS / f"{name}.json"
        self.started = time.time()
        self.data: dict[str, Any] = {
            "benchmark": name,
            "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
            "git_commit": git_commit(),
            "machine": machine(),
            "load_average_start": load_average(),
            "machine_speed_start": machine_speed(),
        }

    def write(self, **figures: Any) -> Path:
        self.data.update(figures)
        self.data["load_average_end"] = load_average()
        self.data["machine_speed_end"] = machine_speed()
        self.data["wall_seconds_total"] = round(time.time() - self.started, 1)
        # All or nothing: with --add the file holds earlier runs (hours of them).
        write_json(self.path, self.data)
        print(f"wrote {self.path}")
        return self.path


def set_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads (default: all cores) so runs are comparable."""
    if threads:
        torch.set_num_threads(threads)


def compose_train_config(overrides: list[str], output_dir: Path) -> Any:
    """The suite's train config as `train.py` would compose it, with its run dir in `output_dir`."""
    from cnnlab.config import compose_run_config
    from cnnlab.training.task import apply_process_settings

    cfg = compose_run_config(overrides, output_dir)
    apply_process_settings(cfg)  # a bare loop run beside the suite gets them too
    return cfg


def suite_precision(cfg: Any) -> str:
    """The precision the suite trains a composed config in (`auto` resolved for this machine)."""
    trainer = cfg.trainer
    return str(resolve_precision(trainer.get("accelerator", "auto"), trainer.precision))


def autocast(precision: str, device: str = "cpu") -> AbstractContextManager[Any]:
    """The context Lightning's precision plugin puts around forward and loss, for a bare loop
    that must do the suite's arithmetic: nothing for fp32, bf16 autocast for bf16-mixed."""
    if precision in ("32-true", "32"):
        return nullcontext()
    if precision == "bf16-mixed":
        return torch.autocast(device, dtype=torch.bfloat16, cache_enabled=False)
    raise SystemExit(f"bench: the bare loop runs 32-true or bf16-mixed, not {precision}")
