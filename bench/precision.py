"""Why the CPU recipes train in fp32 + channels_last: the cost of one training step of the
CPU recipe's net in fp32, bf16 autocast and each memory format, on this machine.

Without native bf16 instructions (AVX512-BF16 / AMX), bf16 autocast on a CPU converts
around every op; channels_last lets oneDNN pick its fastest convolution layouts.

    python bench/precision.py --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F
from common import Record, set_threads

from cnnlab.build import cpu_has_bf16
from cnnlab.models.airbench import AirbenchNet


def step_seconds(bf16: bool, channels_last: bool, batch: int, steps: int) -> list[float]:
    torch.manual_seed(0)
    model = AirbenchNet(3, 10, 32, widths=(32, 64, 128))
    x = torch.randn(batch, 3, 32, 32)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    times = []
    for i in range(steps + 1):
        start = time.process_time()
        autocast = torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step pays one-time allocations
            times.append(time.process_time() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    set_threads(args.threads)
    record = Record("precision", args.out)
    variants = {
        "fp32 channels_last": (False, True),
        "fp32 NCHW": (False, False),
        "bf16 autocast channels_last": (True, True),
        "bf16 autocast NCHW": (True, False),
    }
    results = {}
    for name, (bf16, cl) in variants.items():
        seconds = statistics.median(step_seconds(bf16, cl, args.batch, args.steps))
        results[name] = round(seconds, 4)
        print(f"{name}: {seconds * 1000:.0f} ms CPU per step of {args.batch}")
    base = results["fp32 channels_last"]
    record.write(
        model="AirbenchNet widths 32/64/128 (cifar10_fast_cpu)",
        batch=args.batch,
        cpu_has_native_bf16=cpu_has_bf16(),
        cpu_seconds_per_step=results,
        slowdown_vs_fp32_channels_last={k: round(v / base, 2) for k, v in results.items()},
    )


if __name__ == "__main__":
    main()
