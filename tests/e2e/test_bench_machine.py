"""Benchmark records name the machine kind, and the bare loops compute in the suite's precision.

A CPU figure from an AVX2 machine (auto: fp32) and one from a bf16 machine (auto: bf16-mixed)
are different figures: every JSON says which kind, and the bare loops follow what `auto`
resolved, so a suite-versus-bare comparison is like with like on either kind.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from cnnlab.machine import cpu_has_bf16
from cnnlab.paths import REPO_ROOT
from cnnlab.training.build import CPU_BF16_ENV, resolve_precision
from tests.helpers.data import write_cifar_batches

sys.path.insert(0, str(REPO_ROOT / "bench"))
import common
import reference_loop


@pytest.mark.parametrize(("value", "expected"), [("1", "bf16-mixed"), ("0", "32-true")])
def test_machine_record_names_the_cpu_kind_and_what_auto_picks(monkeypatch, value, expected):
    monkeypatch.setenv(CPU_BF16_ENV, value)
    record = common.machine()
    assert record["cpu_bf16_override"] == value
    assert record["cpu_auto_precision"] == expected
    assert record["cpu_kind"].endswith(" bf16") == record["cpu_native_bf16"]
    monkeypatch.delenv(CPU_BF16_ENV)
    assert common.machine()["cpu_bf16_override"] is None


def test_bare_loop_autocast_is_the_suites_precision():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with common.autocast("32-true"):
        assert (a @ b).dtype == torch.float32
    with common.autocast("bf16-mixed"):
        assert (a @ b).dtype == torch.bfloat16
    assert (a @ b).dtype == torch.float32  # nothing leaks out of the context
    with pytest.raises(SystemExit, match="not 16-mixed"):
        common.autocast("16-mixed")


@pytest.mark.precision
def test_reference_loop_trains_in_the_precision_auto_resolves(monkeypatch, tmp_path: Path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py", per_batch=20, test_size=20)
    precision = str(resolve_precision("cpu", "auto"))
    seen: list[str] = []

    def spy(requested: str):
        seen.append(requested)
        return common.autocast(requested)

    monkeypatch.setattr(reference_loop, "autocast", spy)
    result = reference_loop.run_reference(
        tmp_path, seed=0, epochs=1, target=2.0, widths=(8, 8, 8), batch_size=50,
        precision=precision,
    )  # fmt: skip
    assert [row["epoch"] for row in result["epochs"]] == [1]
    assert 0.0 <= result["epochs"][0]["test_acc"] <= 1.0
    assert result["reached"] is None  # a target of 200% is never reached
    assert seen and set(seen) == {precision}


def test_record_gauges_the_cpu_speed_before_and_after(tmp_path: Path) -> None:
    """A VM's host can slow it with the load average flat: the record carries a reading of
    the CPU's speed at both ends, in the matmul precision the CPU runs natively."""
    record = common.Record("gauge", str(tmp_path / "gauge.json"))
    written = json.loads(record.write(figure=1).read_text())
    for end in ("machine_speed_start", "machine_speed_end"):
        reading = written[end]
        assert reading["matmul_tflops"] > 0 and reading["memory_gb_s"] > 0
        assert reading["matmul_dtype"] == ("bfloat16" if cpu_has_bf16() else "float32")


@pytest.mark.parametrize(
    ("flags", "precision", "tag"),
    [
        ({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}, "bf16-mixed", "amx-bf16"),
        ({"avx2", "avx512f", "avx512_bf16"}, "bf16-mixed", "avx512bf16-bf16"),
        ({"avx2", "avx512f"}, "32-true", "avx512-fp32"),
        ({"avx2"}, "32-true", "avx2-fp32"),
    ],
)
def test_speed_suite_keeps_each_cpu_kind_in_its_own_folder(monkeypatch, flags, precision, tag):
    """AMX and AVX512-BF16-only CPUs differ in bf16 speed: one must not overwrite the other."""
    import speed_suite

    monkeypatch.setattr(speed_suite, "cpu_flags", lambda: flags)
    assert speed_suite.machine_tag(precision) == tag


@pytest.mark.parametrize(
    ("limits", "capability", "tag"),
    [
        ({}, "AVX512", "avx512bf16-fp32"),
        (
            {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
            "AVX2",
            "avx512bf16-as-avx2-fp32",
        ),
        ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "AVX512", "avx512bf16-as-avx512-fp32"),
    ],
)
def test_a_cpu_limited_to_other_kernels_files_apart(monkeypatch, limits, capability, tag):
    """A bf16 CPU running AVX2 kernels is neither kind: its figures get a folder of their own."""
    import speed_suite

    from cnnlab.machine import ISA_LIMIT_ENV

    for name in ISA_LIMIT_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(speed_suite, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert speed_suite.machine_tag("32-true") == tag


def test_torch_honours_the_isa_limits_and_auto_follows(tmp_path: Path):
    """The limits are torch's and oneDNN's own switches: in a fresh process with both set to
    AVX2, torch dispatches AVX2 kernels, `auto` is fp32 and the record says why, on any CPU."""
    import os
    import subprocess

    script = (
        "import json, torch, common\n"
        "from cnnlab.training.build import resolve_precision\n"
        "print(json.dumps([torch.backends.cpu.get_cpu_capability(),"
        " str(resolve_precision('cpu', 'auto')), common.machine()['isa_limits']]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != CPU_BF16_ENV}
    env.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "bench"), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    capability, precision, limits = json.loads(out.stdout.strip().splitlines()[-1])
    assert capability == "AVX2"
    assert precision == "32-true"
    assert limits == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
