"""bench/time_to_accuracy.py --add: a record grows by seeds without mixing in other runs.

A 3-seed median of a 17-minute run may be measured in parts; the parts must be the same
benchmark (recipe, target, overrides) and must not measure a seed twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from cnnlab.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
import time_to_accuracy


def record(path: Path, seeds: list[int], recipe: str = "cifar10_85_cpu") -> Path:
    path.write_text(
        json.dumps(
            {
                "recipe": recipe,
                "overrides": ["trainer.precision=bf16-mixed"],
                "suite": {"target": 0.85},
                "suite_runs": [{"seed": s, "reached": None, "epochs": []} for s in seeds],
                "command": "python bench/time_to_accuracy.py ...",
                "git_commit": "abc1234",
            }
        )
    )
    return path


def args(
    out: Path, first_seed: int, seeds: int, recipe: str = "cifar10_85_cpu"
) -> argparse.Namespace:
    return argparse.Namespace(
        out=str(out),
        recipe=recipe,
        target=0.85,
        overrides=["trainer.precision=bf16-mixed"],
        first_seed=first_seed,
        seeds=seeds,
    )


def test_add_keeps_the_earlier_seeds(tmp_path: Path) -> None:
    out = record(tmp_path / "cifar85.json", [0])
    earlier = time_to_accuracy.earlier_runs(args(out, 1, 2))
    assert [r["seed"] for r in earlier["suite_runs"]] == [0]


@pytest.mark.parametrize(
    ("first_seed", "seeds", "recipe", "message"),
    [
        (0, 2, "cifar10_85_cpu", "already has seeds \\[0\\]"),
        (1, 1, "fmnist_93_cpu", "write to another --out"),
    ],
)
def test_add_refuses_a_seed_twice_or_another_benchmark(
    tmp_path: Path, first_seed: int, seeds: int, recipe: str, message: str
) -> None:
    out = record(tmp_path / "cifar85.json", [0])
    before = out.read_text()
    with pytest.raises(SystemExit, match=message):
        time_to_accuracy.earlier_runs(args(out, first_seed, seeds, recipe))
    assert out.read_text() == before  # a refusal changes nothing


def test_add_needs_the_record(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="existing --out"):
        time_to_accuracy.earlier_runs(args(tmp_path / "missing.json", 1, 1))
    torn = tmp_path / "torn.json"
    torn.write_text('{"recipe": "cifar10_85_cpu", "suite_ru')
    with pytest.raises(SystemExit, match="cannot read"):
        time_to_accuracy.earlier_runs(args(torn, 1, 1))


def test_a_write_killed_before_its_rename_keeps_the_earlier_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record is replaced whole: dying after the new text is written but before it
    replaces the file leaves the earlier runs as they were, and no half-written JSON."""
    import common

    out = record(tmp_path / "cifar94.json", [0])
    before = out.read_text()

    def killed(*args: object) -> None:
        raise KeyboardInterrupt  # what SIGINT raises; SIGKILL simply stops here

    monkeypatch.setattr("cnnlab.checkpoints.atomic.os.replace", killed)
    rec = common.Record("time_to_accuracy_x", str(out))
    with pytest.raises(KeyboardInterrupt):
        rec.write(suite_runs=[{"seed": 0}, {"seed": 1}])
    assert out.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cifar94.json"]


def seed_run(train_s: float | None) -> dict:
    reached = None if train_s is None else {"wall_s": train_s + 15, "train_s": train_s, "cpu_s": 1}
    return {"reached": reached, "epochs": [{"test_acc": 0.85}]}


@pytest.mark.parametrize(
    ("train_times", "met"),
    [
        ([40.0, 44.0, 50.0], True),  # median training time 44 s; wall times (with tests) 55-65 s
        ([40.0, 46.0, 47.0], False),  # median 46 s
        ([40.0, 44.0, None], False),  # a seed that never reaches the target fails the goal
    ],
)
def test_goal_is_met_by_the_median_training_time_of_all_seeds(train_times, met) -> None:
    summary = time_to_accuracy.summarize([seed_run(t) for t in train_times], 0.85, goal_s=45)
    assert summary["goal_met"] is met
