"""Suite overhead: the same training through Lightning + cnnlab and through a bare loop.

Both sides get the same model (same class, config and seed, so the same initial weights),
the same training split already in memory, the same batches (the fast path's seeded epoch
order, the same augmentation calls on the same generator), the same optimizer, schedule
and loss, the same optimizer steps and the same validation pass at each epoch end. The
suite runs the recipe as `train.py` builds it, with all its conveniences on (checkpointing,
TensorBoard logging, LR monitor, progress bar, early stopping, sanity check, metrics); only
the recipe's extra algorithms (lookahead, bias freezing) are switched off on both sides,
since the bare loop does not implement them. Both sides compute in the precision the suite
resolves (`precision: auto`: bf16-mixed on a CPU with native bf16, fp32 on AVX2; set
CNNLAB_CPU_BF16 to choose): the bare loop under the autocast Lightning would use. Runs
alternate suite / bare, so load changes on a shared machine hit both; the figures are the
ratios of the medians of wall time and of CPU time (process time, all threads: much less
disturbed by other jobs on a shared CPU than wall time), and the pairwise ratios. A first
suite / bare pair (`--warmup 1`) is run and recorded apart, not counted: whichever side runs
first in a process pays the one-off costs (imports, thread pools, oneDNN kernel creation). The final
weights of both sides must be identical (the proof the work was the same): if they are not,
the script writes its JSON and exits 1.

    python bench/overhead.py --recipe fmnist_fast_cpu --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from common import Record, autocast, compose_train_config, set_threads, suite_precision

from cnnlab.data.device import DeviceBatches
from cnnlab.data.sampling import EpochSampler
from cnnlab.errors import exits_cleanly
from cnnlab.training.build import build
from cnnlab.training.module import schedule_length
from cnnlab.training.task import build_run

NO_EXTRAS = ["callbacks.lookahead=null", "callbacks.freeze_whiten_bias=null"]


def run_overrides(recipe: str, seed: int, epochs: int, batches: int | None) -> list[str]:
    """The recipe as both sides run it: `epochs` epochs of `batches` batches (None: all)."""
    overrides = [f"experiment={recipe}", f"seed={seed}", *NO_EXTRAS]
    overrides.append(f"trainer.max_epochs={epochs}")
    if batches:
        overrides.append(f"trainer.limit_train_batches={batches}")
    return overrides


def config(args: argparse.Namespace, output_dir: Path) -> Any:
    overrides = run_overrides(args.recipe, args.seed, args.epochs, args.batches)
    return compose_train_config([*overrides, *args.overrides], output_dir)


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]


def run_suite(cfg: Any) -> tuple[tuple[float, float], torch.nn.Module]:
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, module, trainer = build_run(cfg)
    datamodule.setup("fit")  # file reading is outside the timed span on both sides
    started = clocks()
    trainer.fit(module, datamodule=datamodule)
    return since(started), module.model


def run_bare(cfg: Any) -> tuple[tuple[float, float], torch.nn.Module]:
    """The plain loop: tensors, a permutation, the augmentation ops, forward/backward/step."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = build(cfg.data, "data", augment=build(cfg.augment, "augment"))
    model = build(cfg.model, "model", **dm.model_kwargs())
    dm.setup("fit")
    train, val = dm.train_split, dm.val_split
    precision = suite_precision(cfg)
    started = clocks()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if hasattr(model, "init_from_data"):
        model.init_from_data(dm.init_batch())
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.module.label_smoothing)
    optimizer = build(cfg.optim, "optim")(params=model.parameters())
    batch_size, epochs = cfg.data.batch_size, cfg.trainer.max_epochs
    loader = DeviceBatches(
        train,
        batch_size,
        EpochSampler(train, seed=cfg.seed, shuffle=True),
        drop_last=cfg.data.drop_last,
        with_index=True,
    )
    per_epoch = min(len(loader), cfg.trainer.get("limit_train_batches") or len(loader))
    steps = schedule_length(per_epoch * epochs)  # the module's rule, also for short runs
    scheduler = build(cfg.scheduler.scheduler, "scheduler")(optimizer=optimizer, total_steps=steps)
    generator = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(epochs):
        model.train()
        loader.sampler.set_epoch(epoch)
        for step, (images, labels, index) in enumerate(loader):
            if step == per_epoch:
                break
            images = dm.augment.batch(images, generator, index=index, epoch=epoch)
            with autocast(precision):
                loss = criterion(model(dm.normalize(images)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        with torch.inference_mode(), autocast(precision):
            correct = 0
            for images, labels in DeviceBatches(
                val, cfg.data.eval_batch_size, EpochSampler(val, seed=0, shuffle=False)
            ):
                correct += int((model(dm.normalize(images)).argmax(1) == labels).sum())
    return since(started), model


def max_weight_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fmnist_fast_cpu")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batches", type=int, default=None, help="train batches per epoch")
    parser.add_argument("--rounds", type=int, default=3, help="suite/bare pairs")
    parser.add_argument(
        "--warmup", type=int, default=1, help="pairs run first and not counted (one-off costs)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--goal", type=float, default=1.03)
    parser.add_argument("--out", default=None)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides (both sides)")
    args = parser.parse_args()
    if args.warmup < 0 or args.rounds < 1:
        sys.exit(
            f"overhead: --warmup must be >= 0 and --rounds >= 1 "
            f"(got --warmup {args.warmup}, --rounds {args.rounds})"
        )
    set_threads(args.threads)
    record = Record(f"overhead_{args.recipe}", args.out)

    wall: dict[str, list[float]] = {"suite": [], "bare": []}
    cpu: dict[str, list[float]] = {"suite": [], "bare": []}
    warmup_wall: dict[str, list[float]] = {"suite": [], "bare": []}
    diffs = []
    precision = ""
    with tempfile.TemporaryDirectory(prefix="cnnlab_overhead_") as tmp:
        for r in range(-args.warmup, args.rounds):
            cfg = config(args, Path(tmp) / f"r{r}")
            precision = suite_precision(cfg)
            order = [("suite", run_suite), ("bare", run_bare)]
            if r % 2:  # alternate which side goes first
                order.reverse()
            models = {}
            label = f"warm-up {r + args.warmup}" if r < 0 else f"round {r}"
            for side, fn in order:
                (wall_s, cpu_s), models[side] = fn(cfg)
                if r < 0:
                    warmup_wall[side].append(round(wall_s, 3))
                else:
                    wall[side].append(round(wall_s, 3))
                    cpu[side].append(round(cpu_s, 3))
                print(
                    f"{label} {side} ({precision}): {wall_s:.2f} s wall, {cpu_s:.2f} s cpu",
                    flush=True,
                )
            diffs.append(max_weight_difference(models["suite"], models["bare"]))
            print(f"{label}: max |suite - bare| weight difference {diffs[-1]:.2e}", flush=True)

    def ratio(times: dict[str, list[float]]) -> float:
        return round(statistics.median(times["suite"]) / statistics.median(times["bare"]), 4)

    def pairwise(times: dict[str, list[float]]) -> list[float]:
        return [round(s / b, 4) for s, b in zip(times["suite"], times["bare"], strict=True)]

    figures = {
        "recipe": args.recipe,
        "overrides": args.overrides,
        "precision": precision,
        "epochs_per_run": args.epochs,
        "train_batches_per_epoch": args.batches or "all",
        "wall_s": wall,
        "cpu_s": cpu,
        "warmup_wall_s": warmup_wall,  # not counted in the ratios
        "wall_ratio_of_medians": ratio(wall),
        "cpu_ratio_of_medians": ratio(cpu),
        "wall_pairwise_ratios": pairwise(wall),
        "cpu_pairwise_ratios": pairwise(cpu),
        "max_weight_difference": diffs,
        "weights_identical": all(d == 0.0 for d in diffs),
        "goal_ratio": args.goal,
        "goal_met_wall": ratio(wall) <= args.goal,
        "goal_met_cpu": ratio(cpu) <= args.goal,
    }
    print(figures)
    record.write(**figures)
    if not figures["weights_identical"]:
        sys.exit(
            f"overhead: suite and bare loop ended with different weights (max |difference| "
            f"{max(diffs):.3g}, {precision}): the two sides did not do the same work"
        )


if __name__ == "__main__":
    exits_cleanly(main)()
