"""The CUDA paths CPU machines never take: data resident in GPU memory, bf16-mixed picked by
`precision: auto`, channels_last, `compile=true`, and 2-process DDP where there are 2 GPUs.

Marked `gpu` and skipped without CUDA; bench/gpu_check.sh runs them on a GPU machine. Tiny
synthetic data: what they prove is the wiring, not speed or accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cnnlab.training.task import build_run, train
from tests.helpers.data import write_cifar_batches
from tests.helpers.train_cli import QUIET, explain, run_train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# airbench94 (the GPU recipe) cut to a few small batches of the synthetic CIFAR-10.
SMALL_AIRBENCH = [
    "experiment=airbench94",
    "trainer=gpu",
    "data.batch_size=32",
    "data.eval_batch_size=50",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    *QUIET,
]


def test_resident_data_bf16_and_channels_last_on_cuda(make_cfg) -> None:
    cfg = make_cfg(SMALL_AIRBENCH)
    assert cfg.trainer.precision == "auto" and cfg.channels_last
    datamodule, module, trainer = build_run(cfg)
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    assert trainer.precision == expected
    seen: dict[str, object] = {}

    def inputs(_module, args) -> None:
        seen.setdefault("device", args[0].device.type)
        seen.setdefault("channels_last", args[0].is_contiguous(memory_format=torch.channels_last))

    def outputs(_module, _args, output) -> None:
        if module.training:
            seen.setdefault("dtype", output.dtype)

    module.model.register_forward_pre_hook(inputs)
    module.model.register_forward_hook(outputs)
    trainer.fit(module, datamodule=datamodule)
    images = next(iter(trainer.train_dataloader))[0]
    assert images.device.type == "cuda"  # the loader serves GPU-resident data: nothing to move
    assert seen == {
        "device": "cuda",
        "channels_last": True,
        "dtype": torch.bfloat16 if expected == "bf16-mixed" else torch.float16,
    }
    weights = [p for p in module.model.parameters() if p.dim() == 4]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    assert torch.isfinite(trainer.callback_metrics["train/loss_epoch"])


def test_compiled_run_trains_tests_and_keeps_checkpoint_keys(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg([*SMALL_AIRBENCH, "compile=true"], output_dir=tmp_path / "run")
    metrics = train(cfg)
    assert 0.0 <= metrics["test/acc"] <= 1.0 and metrics["test/loss"] > 0
    state = torch.load(metrics["best_checkpoint"], map_location="cpu", weights_only=False)
    keys = list(state["state_dict"])
    assert keys and not any("_orig_mod" in key for key in keys)  # compiled in place


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_gpu_ddp_evaluates_every_test_image_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_cifar_batches(data / "cifar-10-batches-py", per_batch=40, test_size=51)
    run_dir = tmp_path / "ddp"
    result = run_train(
        [
            "trainer=ddp",
            "trainer.devices=2",
            f"paths.data_dir={data}",
            f"hydra.run.dir={run_dir}",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "data.val_size=21",
            "data.batch_size=16",
            "data.eval_batch_size=8",
            *QUIET,
        ]
    )
    assert result.returncode == 0, explain(result)
    assert "MEMBER: 2/2" in result.stdout + result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test/acc"] <= 1.0
    # The per-class table's support column counts each test image once across both ranks.
    text = (run_dir / "per_class.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    classes = [[c.strip() for c in row.strip("|").split("|")] for row in rows[1:-1]]
    assert sum(int(cells[4].replace(",", "")) for cells in classes) == 51
