"""Time to accuracy: wall time until the official test accuracy first reaches a target.

The suite runs a recipe exactly as `train.py experiment=<recipe>` would build it (Lightning
Trainer, DataModule, ClassificationModule, the recipe's callbacks); a callback evaluates
the official test set (with the recipe's test-time augmentation) at the end of every
epoch and stops the run once the target is reached. Repeated over N seeds. `--reference`
also runs the bare-PyTorch reference loop (bench/reference_loop.py) in the same process,
alternating with the suite seed by seed, so both see the same machine load, and in the
precision the suite resolved (`precision: auto`: fp32 on AVX2, bf16-mixed on a CPU with
native bf16; CNNLAB_CPU_BF16=0|1 chooses).

Times are reported per epoch, all from the call to `fit` (data loading included):
- `wall_s`: everything, including the per-epoch test evaluations that this benchmark adds;
- `train_s`: `wall_s` minus all of those test passes: the time a run takes to train that
  far (data loading, training steps, its own validation and checkpoints), without testing;
- `cpu_s`: CPU seconds of the process (all threads) over the same span as `wall_s`. On a
  CPU shared with other jobs, wall time stretches with the load; CPU time much less so.

    python bench/time_to_accuracy.py --recipe cifar10_fast_cpu --target 0.85 --seeds 3
    python bench/time_to_accuracy.py --recipe fmnist_fast_cpu --target 0.93 --seeds 3
    python bench/time_to_accuracy.py --recipe cifar10_fast_cpu --target 0.85 --reference
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from common import Record, compose_train_config, set_threads
from lightning.pytorch.callbacks import Callback

from cnnlab.data.device import DeviceBatches
from cnnlab.data.sampling import EpochSampler
from cnnlab.errors import exits_cleanly
from cnnlab.training.task import build_run
from cnnlab.training.tta import tta_logits


class TestSetMonitor(Callback):
    """After each training epoch: official test accuracy; stop once it reaches `target`."""

    def __init__(
        self,
        target: float,
        started: list[float],
        verbose: bool = True,
        from_epoch: int = 1,
        also_tta: tuple[str, ...] = (),
    ) -> None:
        self.target = target
        self.started = started  # [wall, cpu] clocks, set just before fit
        self.verbose = verbose
        # A schedule that decays to the end cannot reach the target early: evaluating from
        # epoch `from_epoch` on only saves the benchmark's own time (train_s is unchanged).
        self.from_epoch = from_epoch
        self.also_tta = also_tta  # other TTA levels, recorded beside (the TTA ablation)
        self.monitor_s = 0.0
        self.history: list[dict[str, Any]] = []
        self.reached: dict[str, Any] | None = None

    @torch.inference_mode()
    def test_accuracy(
        self, trainer: L.Trainer, module: L.LightningModule, tta: str | None = None
    ) -> float:
        datamodule = trainer.datamodule
        if datamodule.test_split is None:
            datamodule.setup("test")
        split = datamodule._resident_split("test", datamodule.test_split)
        batches = DeviceBatches(
            split, datamodule.eval_batch_size, EpochSampler(split, seed=0, shuffle=False)
        )
        was_training = module.training
        module.eval()
        correct = 0
        for images, labels in batches:
            # In the run's precision (bf16 autocast on a bf16 CPU), as its test step would.
            with trainer.precision_plugin.forward_context():
                logits = tta_logits(module, datamodule.normalize(images), tta or module.tta)
            correct += int((logits.argmax(1) == labels).sum())
        module.train(was_training)
        return correct / len(datamodule.test_split)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 < self.from_epoch:
            return
        t0 = time.perf_counter()
        acc = self.test_accuracy(trainer, pl_module)
        others = {f"test_acc_tta_{t}": round(self.test_accuracy(trainer, pl_module, t), 4)
                  for t in self.also_tta}  # fmt: skip
        self.monitor_s += time.perf_counter() - t0
        wall = time.perf_counter() - self.started[0]
        row = {
            "epoch": trainer.current_epoch + 1,
            "test_acc": round(acc, 4),
            "wall_s": round(wall, 2),
            "train_s": round(wall - self.monitor_s, 2),
            "cpu_s": round(time.process_time() - self.started[1], 2),
            "load_1min": round(os.getloadavg()[0], 2),
            **others,
        }
        self.history.append(row)
        if self.verbose:
            print(f"  suite epoch {row['epoch']}: test acc {acc:.4f} at {row['wall_s']:.1f} s")
        if self.reached is None and acc >= self.target:
            self.reached = row
            trainer.should_stop = True


def run_suite(
    recipe: str,
    seed: int,
    target: float,
    overrides: list[str],
    from_epoch: int = 1,
    also_tta: tuple[str, ...] = (),
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cnnlab_tta_") as tmp:
        cfg = compose_train_config(
            [f"experiment={recipe}", f"seed={seed}", *overrides], Path(tmp) / "run"
        )
        L.seed_everything(seed, workers=True, verbose=False)
        datamodule, module, trainer = build_run(cfg)
        datamodule.setup("test")  # the monitor's test split, read before the clock starts
        started = [0.0, 0.0]
        monitor = TestSetMonitor(target, started, from_epoch=from_epoch, also_tta=also_tta)
        trainer.callbacks.append(monitor)
        started[:] = [time.perf_counter(), time.process_time()]
        trainer.fit(module, datamodule=datamodule)
        total = time.perf_counter() - started[0]
    return {
        "seed": seed,
        "precision": str(trainer.precision),
        "reached": monitor.reached,
        "epochs": monitor.history,
        "fit_s": round(total, 2),
        "max_epochs": int(cfg.trainer.max_epochs),
    }


def summarize(runs: list[dict[str, Any]], target: float, goal_s: float | None) -> dict[str, Any]:
    times = [r["reached"]["wall_s"] for r in runs if r["reached"]]
    train_times = [r["reached"]["train_s"] for r in runs if r["reached"]]
    cpu = [r["reached"]["cpu_s"] for r in runs if r["reached"]]
    final = [r["epochs"][-1]["test_acc"] for r in runs if r["epochs"]]
    out: dict[str, Any] = {
        "target": target,
        "runs": len(runs),
        "reached": len(times),
        "median_wall_s": round(statistics.median(times), 1) if times else None,
        "max_wall_s": round(max(times), 1) if times else None,
        "median_train_s": round(statistics.median(train_times), 1) if train_times else None,
        "median_cpu_s": round(statistics.median(cpu), 1) if cpu else None,
        "final_test_acc": final,
    }
    if goal_s is not None:
        out["goal_s"] = goal_s
        # The goals' definition: every seed reaches the target and the median training time
        # (test passes excluded) is within the goal.
        median_train = out["median_train_s"]
        out["goal_met"] = len(train_times) == len(runs) > 0 and median_train <= goal_s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cifar10_fast_cpu", help="experiment=<recipe>")
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--goal-s", type=float, default=None, help="the time goal, for the record")
    parser.add_argument("--seeds", type=int, default=3, help="N seeds: K..K+N-1")
    parser.add_argument("--first-seed", type=int, default=0, help="K (default 0)")
    parser.add_argument(
        "--add", action="store_true",
        help="keep the runs already in --out (same recipe, target, overrides) and add these",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--reference", action="store_true", help="also run the bare loop")
    parser.add_argument("--reference-epochs", type=int, default=8)
    parser.add_argument(
        "--reference-seeds", type=int, default=None, help="bare-loop runs (default: --seeds)"
    )
    parser.add_argument(
        "--eval-from-epoch", type=int, default=1, help="first epoch to test (saves bench time)"
    )
    parser.add_argument(
        "--also-tta", nargs="*", default=[], choices=["none", "flip", "flip_translate"],
        help="also record test accuracy under these TTA levels (not used to stop)",
    )  # fmt: skip
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/...)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the suite")
    args = parser.parse_args()
    set_threads(args.threads)
    name = f"time_to_accuracy_{args.recipe}_{round(args.target * 100)}"
    record = Record(name, args.out)
    data_dir = os.environ.get("CNNLAB_DATA_DIR")

    earlier = earlier_runs(args) if args.add else {}
    suite_runs = list(earlier.get("suite_runs", []))
    reference_runs = list(earlier.get("reference_runs", []))
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        print(f"[suite] {args.recipe} seed {seed}", flush=True)
        suite_runs.append(
            run_suite(
                args.recipe,
                seed,
                args.target,
                args.overrides,
                args.eval_from_epoch,
                tuple(args.also_tta),
            )
        )
        print(f"  reached: {suite_runs[-1]['reached']}", flush=True)
        if args.reference and seed < args.first_seed + (args.reference_seeds or args.seeds):
            from reference_loop import run_reference

            if data_dir is None:
                sys.exit("--reference needs CNNLAB_DATA_DIR")
            print(f"[reference] seed {seed}", flush=True)
            result = run_reference(
                Path(data_dir),
                seed,
                args.reference_epochs,
                args.target,
                precision=suite_runs[-1]["precision"],
                on_epoch=lambda row: print(f"  reference epoch {row}", flush=True),
            )
            reference_runs.append({"seed": seed, **result})
            print(f"  reached: {result['reached']}", flush=True)

    precision = suite_runs[0]["precision"] if suite_runs else None
    figures: dict[str, Any] = {
        "recipe": args.recipe,
        "overrides": args.overrides,
        "precision": precision,
        "suite": summarize(suite_runs, args.target, args.goal_s),
        "suite_runs": suite_runs,
    }
    if args.reference:
        figures["reference"] = summarize(reference_runs, args.target, None)
        figures["reference_runs"] = reference_runs
        figures["reference_config"] = {
            "epochs": args.reference_epochs,
            "precision": precision,
            "widths": [32, 64, 128],
        }
    if earlier:
        figures["earlier_commands"] = [
            *earlier.get("earlier_commands", []),
            {"command": earlier["command"], "git_commit": earlier["git_commit"]},
        ]
    print({k: v for k, v in figures.items() if not k.endswith("_runs")})
    record.write(**figures)


def earlier_runs(args: argparse.Namespace) -> dict[str, Any]:
    """The record --add extends; refuses one of another recipe, target or overrides."""
    if not args.out or not Path(args.out).exists():
        sys.exit("--add needs an existing --out file to add the runs to")
    try:
        earlier = json.loads(Path(args.out).read_text())
    except (OSError, ValueError) as err:
        sys.exit(f"--add: cannot read {args.out} ({err}); point --out at a record to extend")
    mine = {"recipe": args.recipe, "overrides": args.overrides, "target": args.target}
    theirs = {
        "recipe": earlier.get("recipe"),
        "overrides": earlier.get("overrides"),
        "target": earlier.get("suite", {}).get("target"),
    }
    if mine != theirs:
        sys.exit(f"--add: {args.out} holds {theirs}, not {mine}; write to another --out")
    seeds = {r["seed"] for r in earlier["suite_runs"]}
    wanted = set(range(args.first_seed, args.first_seed + args.seeds))
    if seeds & wanted:
        sys.exit(f"--add: {args.out} already has seeds {sorted(seeds & wanted)}; use --first-seed")
    return earlier


if __name__ == "__main__":
    exits_cleanly(main)()
