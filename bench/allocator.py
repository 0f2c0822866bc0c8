"""Allocator setting: the same training with `keep_freed_memory` on and off.

glibc hands every freed block over 32 MiB back to the OS, so a CPU training step that frees
and re-allocates its activations page-faults them in again every step; `keep_freed_memory`
(conf/train.yaml, on by default) keeps them for reuse. The setting is process-wide and cannot
be undone, so each run is its own process: a child composes the recipe as `train.py` does
(`keep_freed_memory=true|false`), reads the data outside the timed span, and times
`trainer.fit` (wall and CPU), counting minor page faults and the peak resident memory.
Runs alternate on / off so load changes hit both; a first pair is a warm-up, recorded apart.
Both sides must end with the same weights (the setting moves memory, not arithmetic): if
they do not, the script writes its JSON and exits 1.

    python bench/allocator.py --recipe fmnist_95_cpu --batches 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import Record, set_threads

from cnnlab.errors import exits_cleanly

SIDES = ("on", "off")


def child(args: argparse.Namespace) -> None:
    """One timed fit in this process; prints one JSON line."""
    from common import compose_train_config
    from overhead import run_overrides, run_suite

    set_threads(args.threads)
    overrides = run_overrides(args.recipe, args.seed, 1, args.batches)
    flag = "true" if args.child == "on" else "false"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_train_config(
            [*overrides, f"keep_freed_memory={flag}", *args.overrides], Path(tmp)
        )
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        (wall, cpu), model = run_suite(cfg)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    checksum = sum(float(t.double().sum()) for t in model.state_dict().values())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "side": args.child,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "minor_page_faults": faults,
                "peak_rss_mib": round(peak_mib, 1),
                "weights_checksum": checksum,
            }
        )
    )


def run_child(args: argparse.Namespace, side: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", side, "--recipe", args.recipe]
    command += ["--seed", str(args.seed), "--batches", str(args.batches)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run([*command, *args.overrides], capture_output=True, text=True)
    if done.returncode != 0:  # the child's own error line (bad input: one line, exit 2)
        lines = done.stderr.strip().splitlines() or [f"bench: the {side} run failed"]
        print(lines[-1], file=sys.stderr)
        raise SystemExit(done.returncode)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {side}: {result}")
    return result


@exits_cleanly
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fmnist_95_cpu", help="experiment=<recipe>")
    parser.add_argument("--batches", type=int, default=20, help="training batches per run")
    parser.add_argument("--rounds", type=int, default=3, help="on/off pairs after the warm-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/...)")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for both sides")
    args = parser.parse_args()
    if args.batches < 1 or args.rounds < 1:
        parser.error("--batches and --rounds must be >= 1")
    if args.child:
        child(args)
        return
    record = Record("allocator", args.out)
    warmup = {side: run_child(args, side) for side in SIDES}
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for _ in range(args.rounds):
        for side in SIDES:
            runs[side].append(run_child(args, side))

    def median(side: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[side])

    checksums = {run["weights_checksum"] for side in SIDES for run in runs[side]}
    figures = {
        "recipe": args.recipe,
        "batches": args.batches,
        "overrides": args.overrides,
        "warmup": warmup,
        "runs": runs,
        "wall_ratio_on_over_off": round(median("on", "wall_s") / median("off", "wall_s"), 3),
        "cpu_ratio_on_over_off": round(median("on", "cpu_s") / median("off", "cpu_s"), 3),
        "median_minor_page_faults": {side: median(side, "minor_page_faults") for side in SIDES},
        "median_peak_rss_mib": {side: median(side, "peak_rss_mib") for side in SIDES},
        "weights_identical": len(checksums) == 1,
    }
    record.write(**figures)
    print({k: v for k, v in figures.items() if k not in ("runs", "warmup")})
    if not figures["weights_identical"]:
        raise SystemExit("bench: the two settings ended with different weights")


if __name__ == "__main__":
    main()
