"""What `precision: auto` trains in, and figures that stay honest in it.

Marked `precision`: CI runs these a second time with CNNLAB_CPU_BF16=1, so an AVX2 machine
(where `auto` is fp32) also proves the bf16-mixed path a bf16 CPU takes. They stay tiny:
bf16 is emulated, and 10-20x slower, on CPUs without native bf16.
"""

from __future__ import annotations

import pytest
import torch

from cnnlab.training.build import cpu_bf16
from cnnlab.training.task import build_run

QUIET = [
    "callbacks.rich_progress_bar=null",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
]

pytestmark = pytest.mark.precision


def test_auto_trains_in_the_precision_the_cpu_kind_gets(make_cfg) -> None:
    cfg = make_cfg(["trainer=cpu", "debug=fast", *QUIET])
    assert cfg.trainer.precision == "auto"
    _, _, trainer = build_run(cfg)
    assert trainer.precision == ("bf16-mixed" if cpu_bf16() else "32-true")


def test_test_metrics_agree_with_the_confusion_matrix(make_cfg) -> None:
    """Accuracy and macro F1 come from softmax probabilities, the confusion matrix and the
    per-class table from the logits: in bf16 the probabilities of a barely trained net tie
    where the logits do not, unless the softmax runs in fp32."""
    cfg = make_cfg(
        [
            "trainer=cpu",
            "model=simple_cnn",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "data.batch_size=16",
            "data.eval_batch_size=25",
            "data.num_workers=0",
            *QUIET,
        ]
    )
    datamodule, module, trainer = build_run(cfg)
    trainer.fit(module, datamodule=datamodule)
    (results,) = trainer.test(module, datamodule=datamodule, verbose=False)
    matrix = module.confusion_matrix
    total = int(matrix.sum())
    assert total == 50  # the synthetic CIFAR test set
    assert results["test/acc"] == pytest.approx(float(matrix.trace()) / total, abs=1e-7)
    per_class_f1 = [values["f1"] for values in module.per_class_results.values()]
    assert results["test/f1"] == pytest.approx(sum(per_class_f1) / len(per_class_f1), abs=1e-6)
    assert torch.isfinite(torch.tensor(results["test/loss"]))
