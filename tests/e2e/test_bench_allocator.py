"""bench/allocator.py times one recipe with `keep_freed_memory` on and off, a process each.

Its ratio is only about the allocator if both sides did the same arithmetic: identical final
weights are the proof, and the record says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cnnlab.paths import REPO_ROOT


def test_both_settings_train_the_same_weights_and_the_ratio_is_of_their_medians(
    synthetic_data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "allocator.json"
    small = ["data.val_size=20", "data.batch_size=32", "data.eval_batch_size=50"]
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "allocator.py"),
            *("--recipe", "fmnist_fast_cpu", "--batches", "2", "--rounds", "1", "--threads", "1"),
            *("--out", str(out), *small, "trainer.precision=32-true"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "CNNLAB_DATA_DIR": str(synthetic_data_dir)},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert set(figures["warmup"]) == {"on", "off"}
    assert {side: len(runs) for side, runs in figures["runs"].items()} == {"on": 1, "off": 1}
    on, off = figures["runs"]["on"][0], figures["runs"]["off"][0]
    assert figures["wall_ratio_on_over_off"] == round(on["wall_s"] / off["wall_s"], 3)
    assert figures["weights_identical"]
