"""The inspector: a real `cnnlab inspect` subprocess (no data present, nothing
written) and, in process, every model option on both datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra.utils
import pytest

from cnnlab.paths import REPO_ROOT
from cnnlab.reporting.inspection import count_params
from cnnlab.verbs.inspect_model import inspect_config, report


def run_inspect(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Run this checkout's package, and point the data dir at an empty folder: the inspector
    # must not need the dataset files.
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")])
    env["CNNLAB_DATA_DIR"] = str(cwd / "no_data_here")
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", "inspect", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # hand-checked figures: see test_inspection.py (ResNet-18 MACs and field) and
        # test_experiments.py (CIFAR10Netv2 field)
        (
            ["model=resnet18", "data=cifar10"],
            {"params": 11_173_962, "macs": 555_422_720, "receptive_field": 109},
        ),
        (
            ["experiment=cifar10netv2_to_85", "data=fashion_mnist"],
            {
                "model": "cifar10netv2",
                "data": "fashion_mnist",
                "experiment": "cifar10netv2_to_85",
                "input_shape": [1, 28, 28],
                # 181,942 on CIFAR-10 minus the first conv's 2 missing input channels (2*16*9)
                "params": 181_942 - 2 * 16 * 9,
                "receptive_field": 81,
            },
        ),
    ],
)
def test_inspector_last_line_is_json(tmp_path: Path, args: list[str], expected: dict) -> None:
    result = run_inspect(args, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    for key, value in expected.items():
        assert figures[key] == value, key
    assert {"params", "macs", "receptive_field", "model", "data", "input_shape"} <= set(figures)
    # the per-layer table and the totals come before the JSON line
    assert any(line.split()[:2] == ["name", "type"] for line in lines)
    assert any(line.startswith("params:") and f"{figures['params']:,}" in line for line in lines)
    assert list(tmp_path.iterdir()) == [], "the inspector wrote files"


def test_inspector_bad_model_option_is_one_line(tmp_path: Path) -> None:
    result = run_inspect(["model=alexnet", "model.widths=[8,8]"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cnnlab: error: model: AlexNet has exactly 5 convs, got widths=[8, 8]"
    ]
    assert result.stdout == ""


# Receptive fields by hand (geometry only, so the same on 32x32 and 28x28); derivations in
# test_inspection.py (alexnet, blocknet, resnet18) and test_experiments.py (the other two).
FIELDS = {
    "simple_cnn": 16,
    "cifar10netv2": 81,
    "alexnet": 40,
    "blocknet": 45,
    "resnet18": 109,
    "resnet": 109,  # depth 18 by default
}


@pytest.mark.parametrize("data", ["cifar10", "fashion_mnist"])
@pytest.mark.parametrize("model", sorted(FIELDS))
def test_inspect_every_model(make_cfg, model: str, data: str) -> None:
    cfg = make_cfg([f"model={model}", f"data={data}"])
    result = inspect_config(cfg)
    c, size = (3, 32) if data == "cifar10" else (1, 28)
    assert result["model"] == model and result["data"] == data
    assert result["input_shape"] == [c, size, size]
    assert result["receptive_field"] == FIELDS[model]
    built = hydra.utils.instantiate(cfg.model, in_channels=c, num_classes=10, image_size=size)
    assert result["params"] == count_params(built)
    assert result["layers"][-1].out_shape == [1, 10]  # the last module is the classifier
    assert json.loads(report(result).splitlines()[-1])["macs"] == result["macs"] > 0
