"""Shared by the bench/ scripts: the machine, the command, the load, and the JSON record.

Every benchmark prints its figures and writes one JSON file holding the machine it ran on,
the exact command, the load average before and after (other processes on a shared CPU
make timings slower, never faster: the load shows how much), and the figures.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
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
        }

    def write(self, **figures: Any) -> Path:
        self.data.update(figures)
        self.data["load_average_end"] = load_average()
        self.data["wall_seconds_total"] = round(time.time() - self.started, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2) + "\n")
        print(f"wrote {self.path}")
        return self.path


def set_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads (default: all cores) so runs are comparable."""
    if threads:
        torch.set_num_threads(threads)


def compose_train_config(overrides: list[str], output_dir: Path) -> Any:
    """The suite's train config as `train.py` would compose it, with its run dir in `output_dir`."""
    from cnnlab.config import compose_run_config

    return compose_run_config(overrides, output_dir)
