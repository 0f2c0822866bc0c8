"""A diverged run stops at its first non-finite loss (exit 3); results are always strict JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cnnlab.checkpoints.atomic import strict_json, write_json
from cnnlab.errors import EXIT_NON_FINITE, exits_cleanly
from cnnlab.sweeps.summary import upsert_row
from cnnlab.training.task import train

DIVERGING = [
    "data=fashion_mnist",
    "optim.lr=1e6",
    "data.batch_size=16",
    "trainer.max_epochs=2",
    "trainer.precision=32-true",
    "callbacks.save_every_n_steps=1",
    "callbacks.rich_progress_bar=null",
    "logger=csv",
]


def strict_load(path: Path) -> Any:
    """json.load that refuses NaN/Infinity, as strict readers (jq, JavaScript) do."""

    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_nan_loss_stops_the_run_at_once_with_exit_3(make_cfg, tmp_path, capsys) -> None:
    cfg = make_cfg(DIVERGING, output_dir=tmp_path / "run")
    with pytest.raises(SystemExit) as stop:
        exits_cleanly(train)(cfg)
    assert stop.value.code == EXIT_NON_FINITE == 3
    line = capsys.readouterr().err.strip().splitlines()[-1]
    # The first non-finite step, in the first epoch: step k is its k-th batch.
    assert re.match(
        r"cnnlab: error: training loss is (nan|inf) at epoch 1, step (\d+) \(batch \2\)", line
    )
    assert "optim.lr" in line and "trainer.precision=32-true" in line
    # Stopped before any validation: no "best" checkpoint, no results.
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["last.ckpt"]
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_metrics_json_stays_strict_json_when_the_guard_is_off(make_cfg, tmp_path) -> None:
    """Without the guard the diverged run finishes; its NaN test loss is written as null."""
    run = tmp_path / "run"
    cfg = make_cfg([*DIVERGING, "callbacks.stop_on_non_finite_loss=null"], output_dir=run)
    metrics = train(cfg)
    recorded = strict_load(run / "metrics.json")
    assert recorded["test/loss"] is None and metrics["test/loss"] is None


def test_non_finite_values_are_null_in_every_results_file(tmp_path) -> None:
    values = {"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": float("-inf")}}
    assert json.loads(strict_json(values)) == {"a": None, "b": [None, 1.5], "c": {"d": None}}
    write_json(tmp_path / "metrics.json", values)
    assert strict_load(tmp_path / "metrics.json")["b"] == [None, 1.5]
    upsert_row(
        tmp_path, {"job": 0, "status": "completed", "run_dir": "a", "test/loss": float("nan")}
    )
    assert strict_load(tmp_path / "summary.json") == [
        {"job": 0, "status": "completed", "run_dir": "a", "test/loss": None}
    ]
