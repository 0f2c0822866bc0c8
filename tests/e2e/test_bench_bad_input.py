"""A benchmark given bad input says so in one line (exit 2), like the suite's own commands.

A missing dataset or a mistyped recipe or override is the usual first error when a
benchmark is run on a new machine; a traceback there hides the fix that the line names.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.paths import REPO_ROOT


def run_bench(script: str, args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CNNLAB_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        (
            "time_to_accuracy.py",
            ["--recipe", "cifar10_85_cpu", "--seeds", "1"],
            "CIFAR-10 not found: searched",
        ),
        (
            "time_to_accuracy.py",
            ["--recipe", "cifar10_85", "--seeds", "1"],
            "experiment/cifar10_85'",
        ),
        ("overhead.py", ["--recipe", "cifar10_85_cpu", "model.width=3"], "override 'model.width'"),
        (
            "allocator.py",
            ["--recipe", "cifar10_85_cpu", "--batches", "1", "--rounds", "1"],
            "CIFAR-10 not found: searched",
        ),
    ],
)
def test_bad_input_to_a_benchmark_is_one_line_and_writes_nothing(
    tmp_path: Path, script: str, args: list[str], message: str
) -> None:
    out = tmp_path / "record.json"
    done = run_bench(script, [*args, "--out", str(out)], data_dir=tmp_path / "no-data-here")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert lines[-1].startswith("cnnlab: error: ") and message in lines[-1]
    assert not out.exists()
