"""The bare-PyTorch reference: a plain training loop, no Lightning, no suite.

An airbench-shaped net (conv-BN-GELU blocks with max-pooling, widths 32/64/128), random
flip + translate, Nesterov SGD with OneCycle, flip test-time augmentation, the test set
evaluated after every epoch. `time_to_accuracy.py --reference` runs it beside the suite,
in the precision the suite resolved (fp32 on an AVX2 CPU, bf16 autocast on a CPU with native
bf16). Only the file reading comes from cnnlab (reading the pickles is not what is compared).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from common import autocast
from torch import nn

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2),
        nn.BatchNorm2d(c_out), nn.GELU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU(),
    )  # fmt: skip


def make_net(widths: tuple[int, int, int]) -> nn.Module:
    w1, w2, w3 = widths
    return nn.Sequential(
        nn.Conv2d(3, 24, 2), nn.GELU(), block(24, w1), block(w1, w2), block(w2, w3),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(w3, 10, bias=False),
    )  # fmt: skip


def augment(x: torch.Tensor, pad: int) -> torch.Tensor:
    flip = torch.rand(len(x)) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (pad,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, len(x))).tolist()
    return torch.stack(
        [padded[i, :, a : a + 32, b : b + 32] for i, (a, b) in enumerate(zip(dy, dx, strict=True))]
    )


def run_reference(
    data_dir: Path,
    seed: int,
    epochs: int,
    target: float,
    widths: tuple[int, int, int] = (32, 64, 128),
    batch_size: int = 512,
    lr: float = 0.2,
    precision: str = "32-true",
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train; return per-epoch test accuracy (flip-TTA) and the wall time it was reached."""
    from cnnlab.data.cifar10 import load_cifar10, locate

    started, cpu_started = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    folder = locate(Path(data_dir), False)
    train, test = load_cifar10(folder, True), load_cifar10(folder, False)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)

    def norm(u8: torch.Tensor) -> torch.Tensor:
        x = (u8.float() / 255 - mean) / std
        return x.contiguous(memory_format=torch.channels_last)

    x_train, x_test = norm(train.images), norm(test.images)
    net = make_net(widths).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = epochs * -(-len(x_train) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.25)
    history, reached, monitor = [], None, 0.0
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(len(x_train)).split(batch_size):
            with autocast(precision):
                loss = F.cross_entropy(
                    net(augment(x_train[idx], 2)), train.labels[idx], label_smoothing=0.2
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        t0 = time.perf_counter()
        net.eval()
        with torch.inference_mode(), autocast(precision):
            correct = sum(
                int(((net(x) + net(x.flip(-1))).argmax(1) == y).sum())
                for x, y in zip(x_test.split(1000), test.labels.split(1000), strict=True)
            )
        monitor += time.perf_counter() - t0
        row = {
            "epoch": epoch + 1,
            "test_acc": correct / len(x_test),
            "wall_s": round(time.perf_counter() - started, 2),
            "train_s": round(time.perf_counter() - started - monitor, 2),
            "cpu_s": round(time.process_time() - cpu_started, 2),
            "load_1min": round(os.getloadavg()[0], 2),
        }
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if reached is None and row["test_acc"] >= target:
            reached = row
            break
    return {"epochs": history, "reached": reached}
