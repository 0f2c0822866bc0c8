"""Per-image training cost of every model of the study, for its plan's time estimate.

For each model of `cnnlab study` (conf/study.yaml, with its per-model overrides) on each
dataset: the CPU time of one training step (forward, backward, optimizer step) at the
study's batch size, per image, in bf16 autocast (where the CPU has native bf16) and in fp32,
channels_last, eager, one thread. CPU time rather than wall time, and the fastest of the
steps rather than their median: other processes on a shared machine still inflate CPU time
(caches, memory bandwidth), and only ever upwards. The load average is recorded. Also the
per-image cost of the per-sample augmentation recipe (albumentations), which runs in
DataLoader workers beside training.
Copy the figures into conf/study.yaml (`estimate.train_cpu_ms`).

    python bench/study_cost.py
    python bench/study_cost.py --models simple_cnn alexnet --steps 5
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch
import torch.nn.functional as F
from common import Record, set_threads

from cnnlab.config import compose_config
from cnnlab.errors import exits_cleanly
from cnnlab.machine import cpu_has_bf16
from cnnlab.study.plan import make_plan
from cnnlab.training.build import build, build_model

SHAPES = {"cifar10": (3, 32), "fashion_mnist": (1, 28)}


class Shape:
    """What build_model asks of a DataModule: the input shape and the class count."""

    def __init__(self, channels: int, side: int) -> None:
        self.channels, self.side = channels, side

    def model_kwargs(self) -> dict[str, int]:
        return {"in_channels": self.channels, "num_classes": 10, "image_size": self.side}


def step_ms(model_overrides: list[str], dataset: str, batch: int, bf16: bool, steps: int) -> float:
    """CPU milliseconds per image of the fastest training step (the first not counted)."""
    torch.manual_seed(0)
    channels, side = SHAPES[dataset]
    node = compose_config("train", model_overrides).model
    model = build_model(node, Shape(channels, side)).to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    x = torch.randn(batch, channels, side, side).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 1):
        start = time.process_time()
        autocast = torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.process_time() - start)
    return 1000 * min(times) / batch


def augment_ms(option: str, images: int = 512) -> float:
    """CPU milliseconds per CIFAR-10 image of a per-sample augmentation option."""
    recipe = build(compose_config("train", [f"augment={option}"]).augment, "augment")
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(images, 32, 32, 3), dtype=np.uint8)
    start = time.process_time()
    for image in batch:
        recipe.sample_transform(image)
    return 1000 * (time.process_time() - start) / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="default: the study's")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    set_threads(args.threads)
    record = Record("study_cost", args.out)
    study = compose_config("study", [])
    parts = [p for p in make_plan(study) if p.kind == "compare"]
    models = {p.model: [o for o in p.fixed if o.startswith("model")] for p in parts}
    models.setdefault(str(study.ablations.model), [f"model={study.ablations.model}"])
    if args.models:
        models = {m: models.get(m, [f"model={m}"]) for m in args.models}
    native = cpu_has_bf16()
    batch = int(study.budget.batch_size)
    costs: dict[str, dict[str, dict[str, float]]] = {}
    for name, overrides in models.items():
        for dataset in study.compare.datasets:
            row = costs.setdefault(name, {}).setdefault(str(dataset), {})
            for precision in ["bf16", "fp32"] if native else ["fp32"]:
                ms = step_ms(overrides, str(dataset), batch, precision == "bf16", args.steps)
                row[precision] = round(ms, 3)
            print(f"{name:14s} {dataset:14s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items())
                  + " CPU-ms per trained image", flush=True)  # fmt: skip
    per_sample = {}
    with contextlib.suppress(ImportError):
        per_sample["albumentations"] = round(augment_ms("albumentations"), 4)
        print(f"albumentations: {per_sample['albumentations']:.4f} CPU-ms per image")
    record.write(
        batch=batch,
        cpu_has_native_bf16=native,
        overrides=models,
        train_cpu_ms_per_image=costs,
        augment_cpu_ms_per_image=per_sample,
    )


if __name__ == "__main__":
    exits_cleanly(main)()
