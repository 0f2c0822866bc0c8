"""Lightning's Trainer arguments are declared in conf/trainer/default.yaml: plain overrides work."""

from __future__ import annotations

import pytest
from lightning.pytorch.profilers import SimpleProfiler

from cnnlab.training.task import build_run, train

QUIET = ["callbacks.rich_progress_bar=null"]

# override -> what the built Trainer must then hold
TRAINER_OPTIONS = {
    "trainer.limit_train_batches=10": lambda t: t.limit_train_batches == 10,
    "trainer.limit_val_batches=0.5": lambda t: t.limit_val_batches == 0.5,
    "trainer.limit_test_batches=3": lambda t: t.limit_test_batches == 3,
    "trainer.overfit_batches=1": lambda t: t.overfit_batches == 1,
    "trainer.gradient_clip_val=1": lambda t: t.gradient_clip_val == 1,
    "trainer.gradient_clip_algorithm=value": lambda t: t.gradient_clip_algorithm == "value",
    "trainer.accumulate_grad_batches=4": lambda t: t.accumulate_grad_batches == 4,
    "trainer.profiler=simple": lambda t: isinstance(t.profiler, SimpleProfiler),
    "trainer.detect_anomaly=true": lambda t: t._detect_anomaly,
    "trainer.max_steps=7": lambda t: t.max_steps == 7,
    "trainer.val_check_interval=0.5": lambda t: t.val_check_interval == 0.5,
    "trainer.enable_model_summary=false": lambda t: (
        not any(type(c).__name__ == "ModelSummary" for c in t.callbacks)
    ),
}


@pytest.mark.parametrize("override", list(TRAINER_OPTIONS))
def test_lightning_trainer_options_take_plain_overrides(make_cfg, override):
    _, _, trainer = build_run(make_cfg([override, *QUIET]))
    assert TRAINER_OPTIONS[override](trainer), override


def test_plain_fast_dev_run_override_trains_one_batch(make_cfg):
    metrics = train(make_cfg(["trainer.fast_dev_run=true", *QUIET]))
    assert metrics["global_step"] == 1
