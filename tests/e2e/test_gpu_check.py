"""bench/gpu_check.sh's CPU-side parts: what CI can prove before a GPU machine runs it.

`--dry-run` packs and unpacks a synthetic CIFAR-10 in several parts (bit-exact), checks its
arguments and writes the check's JSON; bad arguments end as one line; the summary of a GPU
run reads the test report and run dirs as the real run leaves them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
import gpu_pack

SCRIPT = REPO_ROOT / "bench" / "gpu_check.sh"


def gpu_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_dry_run_round_trips_the_data_and_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    payload = tmp_path / "no_payload_here"
    result = gpu_check("--dry-run", "--out", str(out), "--payload", str(payload), "--seeds", "2")
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["dry_run"] is True
    assert record["selftest"]["round_trip"] == "bit-exact" and record["selftest"]["parts"] > 2
    assert record["payload"] == {"index": False, "missing": ["cifar10_index.json"], "ready": False}
    runs = [line for line in record["plan"] if "experiment=airbench94" in line]
    assert len(runs) == 4  # 2 seeds x compile=false/true
    assert sum("compile=true" in line for line in runs) == 2
    assert {"cpu_kind", "cpu_native_bf16", "cpu_auto_precision"} <= set(record["machine"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0"], "--seeds must be 1..10"),
        (["--budget-s", "soon"], "--budget-s must be a whole number"),
        (["--frobnicate"], "unknown argument '--frobnicate'"),
        (["--out"], "--out needs a value"),
    ],
)
def test_bad_arguments_are_one_line(args: list[str], message: str) -> None:
    result = gpu_check("--dry-run", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: error: ") and message in lines[0]


def test_a_payload_with_a_part_missing_is_named(tmp_path: Path) -> None:
    gpu_pack.write_synthetic_cifar(tmp_path / "src" / gpu_pack.FOLDER, per_batch=10, test_size=8)
    index = gpu_pack.pack(tmp_path / "src", tmp_path / "payload", part_mib=0.06)
    assert all(part["bytes"] <= 0.06 * 2**20 for part in index["parts"])
    (tmp_path / "payload" / "cifar10_train_0.u8").unlink()
    code = gpu_pack.main(["unpack", "--payload", str(tmp_path / "payload"), "--out", "x"])
    assert code == 2
    assert gpu_pack.payload_status(tmp_path / "payload")["missing"] == ["cifar10_train_0.u8"]


def test_summary_reads_the_runs_as_the_gpu_run_leaves_them(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    rows = [("false", 0, 0, 21500), ("true", 0, 0, 70250), ("false", 1, 124, 90000)]
    runs.mkdir()
    (runs / "runs.tsv").write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    for flag, acc, seconds in (("false", 0.9412, 9.5), ("true", 0.9391, 30.25)):
        (runs / f"compile-{flag}_seed0").mkdir()
        metrics = {"test/acc": acc, "train_seconds": seconds, "epochs": 10}
        (runs / f"compile-{flag}_seed0" / "metrics.json").write_text(json.dumps(metrics))
    table = gpu_pack.summarize_runs(runs)
    eager, compiled = table["compile_false"], table["compile_true"]
    assert [r["seed"] for r in eager["runs"]] == [0, 1]
    assert eager["runs"][1] == {"seed": 1, "exit_code": 124, "process_s": 90.0}  # timed out
    assert (eager["finished"], eager["reached_94"], eager["median_seconds_to_94"]) == (1, 1, 9.5)
    assert (compiled["reached_94"], compiled["median_seconds_to_94"]) == (0, None)
    assert compiled["runs"][0]["process_s"] == 70.2  # ms -> s
