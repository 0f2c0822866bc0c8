"""Cost of one last.ckpt write (ResNet18 + SGD momentum) with AtomicCheckpointIO vs Lightning's.

Why it matters: last.ckpt is refreshed every `callbacks.save_every_n_steps` steps, so its
write time divided by that many steps is the training-time overhead of kill-safety.
    python bench/checkpoint_io.py [--out outputs/bench/checkpoint_io.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cnnlab.checkpoints.io import AtomicCheckpointIO
from cnnlab.errors import exits_cleanly
from cnnlab.models.resnet import ResNet


def checkpoint() -> dict:
    model = ResNet(in_channels=3, num_classes=10, image_size=32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()  # fills the momentum buffers: a real checkpoint is weights + optimizer
    return {"state_dict": model.state_dict(), "optimizer_states": [optimizer.state_dict()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default="outputs", help="where to write (the runs' filesystem)")
    parser.add_argument("--out", default="outputs/bench/checkpoint_io.json")
    args = parser.parse_args()
    ckpt = checkpoint()
    figures = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        target = Path(folder) / "last.ckpt"
        for name, io in (("lightning", TorchCheckpointIO()), ("atomic", AtomicCheckpointIO())):
            seconds = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                io.save_checkpoint(ckpt, target)
                seconds.append(time.perf_counter() - started)
            figures[f"{name}_median_ms"] = round(1000 * statistics.median(seconds), 1)
        figures["checkpoint_mb"] = round(os.path.getsize(target) / 1e6, 1)
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "command": " ".join([sys.executable, *sys.argv]),
        "torch": torch.__version__,
        "figures": figures,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    exits_cleanly(main)()
