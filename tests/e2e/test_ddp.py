"""DDP on CPU: 2 gloo processes evaluate exactly like 1 process (no padded, repeated samples)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.config import compose_run_config
from cnnlab.training.task import build_run
from tests.helpers.data import write_cifar_batches
from tests.helpers.train_cli import QUIET, explain, run_train

# 51 test images: odd, so a padding DistributedSampler would evaluate one image twice.
# Evaluation batches of 8: the two ranks get 26 and 25 images (4 batches each). In fp32 on
# every machine kind: the loss is compared to 1e-6, and bf16 rounding moved it by 2.5e-5
# depending on how the images are batched between the processes.
EVAL_ARGS = [
    "data.val_size=21",
    "data.batch_size=16",
    "data.eval_batch_size=8",
    "trainer.precision=32-true",
    *QUIET,
]


def test_two_process_cpu_evaluation_equals_one_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_cifar_batches(data / "cifar-10-batches-py", per_batch=40, test_size=51)
    run_dir = tmp_path / "ddp"
    result = run_train(
        [
            "trainer=ddp_cpu",
            f"paths.data_dir={data}",
            f"hydra.run.dir={run_dir}",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            *EVAL_ARGS,
        ]
    )
    assert result.returncode == 0, explain(result)
    assert "MEMBER: 2/2" in result.stdout + result.stderr  # really two processes
    two = json.loads((run_dir / "metrics.json").read_text())

    cfg = compose_run_config(["trainer=cpu", *EVAL_ARGS], tmp_path / "single", data)
    datamodule, module, trainer = build_run(cfg)
    (one,) = trainer.test(
        module, datamodule=datamodule, ckpt_path=two["best_checkpoint"], verbose=False
    )
    assert int(module.confusion_matrix.sum()) == 51
    for key in ("test/acc", "test/precision", "test/recall", "test/f1"):
        assert two[key] == float(one[key]), key  # ratios of synced counts: exact
    assert two["test/loss"] == pytest.approx(float(one["test/loss"]), rel=1e-6, abs=1e-7)
    assert two["per_class"] == module.per_class_results
