"""What bf16-mixed buys on this CPU: a recipe's training through the suite, fp32 against
bf16-mixed, alternating, in one process.

`precision: auto` picks bf16-mixed wherever the CPU has native bf16; this measures whether
that is faster for a given recipe on the machine at hand (the JSON names its CPU kind).
Each round fits the recipe once in each precision (`trainer.precision` set explicitly, so
CNNLAB_CPU_BF16 does not matter), order alternating between rounds; the figures are wall and
CPU seconds (process time, all threads) of `fit`, and the ratio bf16 / fp32 of their medians.

    python bench/precision_cost.py --recipe fmnist_fast_cpu --batches 40 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
from common import Record, compose_train_config, set_threads

from cnnlab.errors import exits_cleanly
from cnnlab.training.task import build_run

PRECISIONS = ("32-true", "bf16-mixed")


def fit_seconds(recipe: str, precision: str, batches: int, output_dir: Path) -> dict[str, float]:
    cfg = compose_train_config(
        [
            f"experiment={recipe}",
            "seed=0",
            "trainer.max_epochs=1",
            f"trainer.limit_train_batches={batches}",
            f"trainer.precision={precision}",
            "callbacks.rich_progress_bar=null",
        ],
        output_dir,
    )
    L.seed_everything(0, workers=True, verbose=False)
    datamodule, module, trainer = build_run(cfg)
    datamodule.setup("fit")  # file reading stays outside the timed span
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit(module, datamodule=datamodule)
    return {
        "wall_s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fmnist_fast_cpu")
    parser.add_argument("--batches", type=int, default=40, help="train batches (one epoch)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    set_threads(args.threads)
    record = Record(f"precision_cost_{args.recipe}", args.out)
    runs: dict[str, list[dict[str, float]]] = {p: [] for p in PRECISIONS}
    with tempfile.TemporaryDirectory(prefix="cnnlab_precision_") as tmp:
        for r in range(args.rounds):
            order = PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]
            for precision in order:
                result = fit_seconds(args.recipe, precision, args.batches, Path(tmp) / f"{r}")
                runs[precision].append(result)
                print(f"round {r} {precision}: {result}", flush=True)

    def ratio(key: str) -> float:
        bf16, fp32 = (statistics.median(run[key] for run in runs[p]) for p in PRECISIONS[::-1])
        return round(bf16 / fp32, 3)

    figures = {
        "recipe": args.recipe,
        "train_batches": args.batches,
        "runs": runs,
        "bf16_over_fp32_wall": ratio("wall_s"),
        "bf16_over_fp32_cpu": ratio("cpu_s"),
    }
    print({k: v for k, v in figures.items() if k != "runs"})
    record.write(**figures)


if __name__ == "__main__":
    exits_cleanly(main)()
