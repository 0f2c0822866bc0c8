"""bench/overhead.py compares like with like: its bare loop must do exactly the suite's work.

The overhead figure is only a figure about the suite if both sides run the same steps on the
same batches with the same schedule, in the same precision; identical final weights are the
proof. A truncated epoch (`--batches`) and a short run are where a schedule-length mismatch
shows; a bf16 CPU (or CNNLAB_CPU_BF16=1: the `precision` rerun) is where a precision
mismatch shows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cnnlab.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
import overhead


@pytest.mark.precision
@pytest.mark.parametrize(("epochs", "batches"), [(1, 3), (2, None)])
def test_bare_loop_ends_with_the_suites_weights(
    make_cfg, tmp_path: Path, epochs: int, batches: int | None
) -> None:
    overrides = overhead.run_overrides("fmnist_fast_cpu", seed=0, epochs=epochs, batches=batches)
    cfg = make_cfg(
        [*overrides, "data.batch_size=32", "data.eval_batch_size=50", "data.num_workers=0"],
        output_dir=tmp_path / "run",
    )
    _, suite_model = overhead.run_suite(cfg)
    _, bare_model = overhead.run_bare(cfg)
    assert overhead.max_weight_difference(suite_model, bare_model) == 0.0


def test_warmup_pair_is_recorded_apart_from_the_counted_rounds(
    synthetic_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first pair in a process pays one-off costs: it is kept out of the ratios."""
    out = tmp_path / "overhead.json"
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(synthetic_data_dir))
    argv = ["overhead.py", "--rounds", "1", "--warmup", "1", "--batches", "2", "--out", str(out)]
    small = ["data.val_size=20", "data.batch_size=32", "data.eval_batch_size=50"]
    monkeypatch.setattr(sys, "argv", [*argv, *small, "trainer.precision=32-true"])
    overhead.main()
    figures = json.loads(out.read_text())
    assert {side: len(t) for side, t in figures["warmup_wall_s"].items()} == {"suite": 1, "bare": 1}
    assert {side: len(t) for side, t in figures["wall_s"].items()} == {"suite": 1, "bare": 1}
    assert figures["wall_ratio_of_medians"] == round(
        figures["wall_s"]["suite"][0] / figures["wall_s"]["bare"][0], 4
    )
    assert figures["weights_identical"]


@pytest.mark.parametrize("flags", [["--warmup", "-1"], ["--rounds", "0"]])
def test_bad_round_counts_are_one_line_and_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str]
) -> None:
    out = tmp_path / "overhead.json"
    out.write_text("{}")  # an earlier record: a refusal must leave it alone
    monkeypatch.setattr(sys, "argv", ["overhead.py", *flags, "--out", str(out)])
    with pytest.raises(SystemExit) as refused:
        overhead.main()
    assert "--warmup must be >= 0 and --rounds >= 1" in str(refused.value.code)
    assert out.read_text() == "{}"
