"""bench/overhead.py compares like with like: its bare loop must do exactly the suite's work.

The overhead figure is only a figure about the suite if both sides run the same steps on the
same batches with the same schedule, in the same precision; identical final weights are the
proof. A truncated epoch (`--batches`) and a short run are where a schedule-length mismatch
shows; a bf16 CPU (or CNNLAB_CPU_BF16=1: the `precision` rerun) is where a precision
mismatch shows.
"""

from __future__ import annotations

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
