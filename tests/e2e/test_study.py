"""`cnnlab study` end to end on the tiny synthetic datasets, with a tiny budget, 2 models and
2-value ablations: killed (SIGKILL) once its first part has finished and a run of the second
has saved a checkpoint, then run again with the same command, which keeps the finished runs,
continues the killed one and writes every figure and table of the report."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from tests.helpers.train_cli import SRC

FIGURES = [
    "accuracy_vs_size.png",
    "accuracy_vs_time.png",
    "val_acc_cifar10.png",
    "val_acc_fashion_mnist.png",
    "per_class_f1_cifar10.png",
    "per_class_f1_fashion_mnist.png",
    "reference_cifar10.png",
    "reference_fashion_mnist.png",
    "ablation_optimizer.png",
    "ablation_augment.png",
    "ablation_lr.png",
]
SECTIONS = [
    "## Findings",
    "## Which model?",
    "### CIFAR-10",
    "### Fashion-MNIST",
    "### Accuracy against size and cost",
    "## Which classes are hard?",
    "## Beside published results",
    "## What the training choices are worth",
    "### Optimizer",
    "### Augmentation",
    "### Learning rate",
    "## All runs",
    "## How this report is made",
]


def study_command(tmp_path: Path, data_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "cnnlab", "study",
        f"data_dir={data_dir}", f"out_dir={tmp_path / 'runs'}", f"report_dir={tmp_path / 'docs'}",
        "compare.models=[simple_cnn,cifar10netv2]",
        "budget.epochs=2", "budget.ablation_epochs=1", "budget.batch_size=32",
        "budget.val_size=20",
        "ablations.optimizer=[sgd,adamw]", "ablations.augment=[none,flip_crop]",
        "ablations.lr=[0.001,0.01]", "threads=1",
    ]  # fmt: skip


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def table_rows(markdown: str, heading: str) -> list[str]:
    section = markdown.split(f"{heading}\n", 1)[1]
    section = re.split(r"\n#{2,3} ", section, maxsplit=1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")][1:]  # no header


def test_study_killed_then_resumed_writes_every_figure_and_table(tmp_path, synthetic_data_dir):
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    command = study_command(tmp_path, synthetic_data_dir)
    first = [runs / "compare" / "simple_cnn" / str(job) / "metrics.json" for job in (0, 1)]
    second_ckpt = runs / "compare" / "cifar10netv2" / "0" / "checkpoints" / "last.ckpt"
    log = tmp_path / "killed.log"
    with open(log, "w") as handle:
        study = subprocess.Popen(command, env=environment(), stdout=handle,
                                 stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        ready = lambda: all(p.is_file() for p in first) and second_ckpt.is_file()  # noqa: E731
        try:
            wait_until(lambda: ready() or study.poll() is not None, 600, "the first part")
        finally:
            study.kill()  # the study only: its running part must die with it
            study.wait()
    assert study.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    wait_until(lambda: not group_alive(study.pid), 120, "the killed study's part to exit")
    assert not docs.exists()
    record = json.loads((runs / "study.json").read_text())
    assert list(record["invocations"][0]["parts"]) == ["compare/simple_cnn"]
    finished = {p: p.stat().st_mtime_ns for p in first}
    unfinished = [
        p.parent.parent
        for p in sorted(runs.glob("compare/cifar10netv2/*/checkpoints/last.ckpt"))
        if not (p.parent.parent / "metrics.json").is_file()
    ]

    result = subprocess.run(command, env=environment(), capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "compare/simple_cnn: 2 run(s) done, nothing to train" in output
    assert {p: p.stat().st_mtime_ns for p in first} == finished  # not trained again
    for run_dir in unfinished:  # killed mid-run: continued from its own last.ckpt
        assert f"Restoring states from the checkpoint path at {run_dir}/checkpoints/last.ckpt" in (
            output
        )
    jobs = {"compare/simple_cnn": 2, "compare/cifar10netv2": 2, "ablation/optimizer": 4,
            "ablation/augment": 4, "ablation/lr": 4}  # fmt: skip
    for part, count in jobs.items():
        for job in range(count):
            metrics = json.loads((runs / part / str(job) / "metrics.json").read_text())
            assert 0.0 <= metrics["test/acc"] <= 1.0
    record = json.loads((runs / "study.json").read_text())
    assert len(record["invocations"]) == 2
    assert "compare/simple_cnn" not in record["invocations"][1]["parts"]
    assert record["invocations"][1]["finished"]

    text = (docs / "README.md").read_text()
    assert text.startswith("<!-- Generated by `cnnlab study`")
    for heading in SECTIONS:
        assert f"\n{heading}\n" in text, heading
    for name in FIGURES:
        assert f"]({name})" in text, name
        with Image.open(docs / name) as image:
            image.load()
            assert image.width >= 400 and image.height >= 200
    assert sorted(p.name for p in docs.iterdir()) == sorted([*FIGURES, "README.md"])
    assert sum(p.stat().st_size for p in docs.iterdir()) < 5_000_000
    assert len(table_rows(text, "### CIFAR-10")) == 2  # one row per model
    assert len(table_rows(text, "### Optimizer")) == 2  # one row per value, both seeds
    assert all(row.count("|") == 7 and "—" not in row for row in table_rows(text, "### Optimizer"))
    assert len(table_rows(text, "## All runs")) >= 16
    findings = text.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
    assert findings.count("\n- ") == 5  # best model per dataset, each ablation's winner
    assert "**simple_cnn**" in findings or "**cifar10netv2**" in findings
    assert "wall time" in text and "2 invocation(s)" in text and "1 thread(s) per run" in text
    html = (runs / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(FIGURES)

    # The report alone, again from the runs: the same page.
    rebuilt = subprocess.run([*command, "parts=[]"], env=environment(), capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert (docs / "README.md").read_text() == text
