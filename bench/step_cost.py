"""Why `precision: auto` is fp32 on CPUs without native bf16, and the CPU recipes run
channels_last, eager: the CPU cost of one training step of the airbench net in fp32 and bf16
autocast, in each memory format, eager and under `torch.compile`, on this machine.

Without native bf16 instructions (AVX512-BF16 / AMX), bf16 autocast on a CPU converts
around every op; with them (the JSON's machine.cpu_kind says "... bf16") it is the faster
one. channels_last lets oneDNN pick its fastest convolution layouts. The compile
time (first step) is reported apart from the per-step cost. `--widths 64 256 256 --batch
1024` gives airbench94's step, from which docs/benchmarks.md projects its epoch time on a CPU.

    python bench/step_cost.py --threads 1
    python bench/step_cost.py --threads 1 --widths 64 256 256 --batch 1024 --variants fp32
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F
from common import Record, set_threads

from cnnlab.errors import exits_cleanly
from cnnlab.machine import cpu_has_bf16
from cnnlab.recipes.airbench.net import AirbenchNet


def step_seconds(
    widths: tuple[int, ...], bf16: bool, channels_last: bool, compiled: bool, batch: int, steps: int
) -> tuple[float, list[float]]:
    """(seconds of the first step, CPU seconds of each later step)."""
    torch.manual_seed(0)
    model = AirbenchNet(in_channels=3, num_classes=10, image_size=32, widths=widths)
    x = torch.randn(batch, 3, 32, 32)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True)
    forward = torch.compile(model) if compiled else model
    first, times = 0.0, []
    for i in range(steps + 1):
        start = time.process_time()
        autocast = torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            loss = F.cross_entropy(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step pays one-time allocations (and the compilation)
            times.append(time.process_time() - start)
        else:
            first = time.process_time() - start
    return first, times


VARIANTS = {  # name: (bf16 autocast, channels_last, torch.compile)
    "fp32 channels_last": (False, True, False),
    "fp32 NCHW": (False, False, False),
    "bf16 autocast channels_last": (True, True, False),
    "bf16 autocast NCHW": (True, False, False),
    "fp32 channels_last compiled": (False, True, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--widths", type=int, nargs=3, default=[32, 64, 128])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--variants",
        default="all",
        choices=["all", "eager", "fp32"],
        help="eager: all but compile; fp32: fp32 channels_last only",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    set_threads(args.threads)
    record = Record("step_cost", args.out)
    widths = tuple(args.widths)
    chosen = {
        name: v
        for name, v in VARIANTS.items()
        if args.variants == "all"
        or (args.variants == "eager" and not v[2])
        or name == "fp32 channels_last"
    }
    per_step, first_step = {}, {}
    for name, (bf16, cl, compiled) in chosen.items():
        first, times = step_seconds(widths, bf16, cl, compiled, args.batch, args.steps)
        per_step[name], first_step[name] = round(statistics.median(times), 4), round(first, 2)
        print(f"{name}: {per_step[name]:.3f} CPU-s per step of {args.batch} (first {first:.1f} s)")
    base = per_step["fp32 channels_last"]
    record.write(
        model=f"AirbenchNet widths {'/'.join(map(str, widths))}",
        batch=args.batch,
        cpu_has_native_bf16=cpu_has_bf16(),
        cpu_seconds_per_step=per_step,
        cpu_seconds_first_step=first_step,
        relative_to_fp32_channels_last={k: round(v / base, 2) for k, v in per_step.items()},
    )


if __name__ == "__main__":
    exits_cleanly(main)()
