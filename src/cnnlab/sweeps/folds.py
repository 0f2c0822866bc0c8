"""Cross-validation results: the runs of a sweep that differ only in `data.fold`, as mean ± std.

    python train.py -m experiment=tabular data=wine data.folds=5 data.fold=0,1,2,3,4

Every multirun's summary then gets `folds.json` / `folds.csv` beside `summary.json`: one row
per group of finished jobs sharing all other overrides, with the number of folds and the
mean and standard deviation (sample, ddof=1) of each key metric over them; `cnnlab report`
shows the same numbers. The validation metric (best_val_*) is the cross-validation score;
test metrics are each fold's model on the one official test set.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnlab.checkpoints.atomic import write_atomic
from cnnlab.reporting.rows import to_csv

FOLD_KEY = "data.fold"
FOLDS_JSON, FOLDS_CSV = "folds.json", "folds.csv"
CV_METRICS = ("best_val_acc", "best_val_r2", "test/acc", "test/f1", "test/r2", "test/mae")
_FOLD_OVERRIDE = re.compile(r"(^|\s)[+~]*data\.fold=\S*")


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def fold_statistics(
    members: Sequence[Mapping[str, Any]], metrics: Sequence[str] = CV_METRICS
) -> dict[str, Any]:
    """`<metric> mean` / `<metric> std` over the members (metrics dicts) that have it."""
    entry: dict[str, Any] = {}
    for metric in metrics:
        values = [
            float(m[metric])
            for m in members
            if isinstance(m.get(metric), (int, float)) and not isinstance(m.get(metric), bool)
        ]
        if values:
            entry[f"{metric} mean"], entry[f"{metric} std"] = mean_std(values)
    return entry


def fold_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per group of completed summary rows that differ only in data.fold."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("status") != "completed" or FOLD_KEY not in row:
            continue
        rest = _FOLD_OVERRIDE.sub(" ", str(row.get("overrides", ""))).split()
        groups.setdefault(" ".join(rest), []).append(row)
    return [
        {
            "overrides": key,
            "folds": len(members),
            FOLD_KEY: ",".join(str(m[FOLD_KEY]) for m in members),
            **fold_statistics(members),
        }
        for key, members in groups.items()
    ]


def write_fold_summary(sweep_dir: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """folds.json / folds.csv in a sweep over data.fold (nothing otherwise), atomically."""

    summary = fold_rows(rows)
    if not summary:
        return
    texts = {FOLDS_JSON: json.dumps(summary, indent=2) + "\n", FOLDS_CSV: to_csv(summary)}
    for name, text in texts.items():
        write_atomic(Path(sweep_dir) / name, lambda handle, text=text: handle.write(text), mode="w")
