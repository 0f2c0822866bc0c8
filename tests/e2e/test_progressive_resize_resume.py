"""Progressive resizing survives a kill: SIGKILL in the middle of a shrunk epoch, then
`resume=auto`, ends bit-identical to the same run left alone (the size is a function of the
restored epoch; the resize draws nothing random)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import torch

from tests.e2e.test_resume import COMPARED, last_state, train_here
from tests.helpers.train_cli import QUIET, explain, run_train, signal_callback_args

# 180 training images / batch 30 = 6 steps per epoch at 16, 24, then 32 pixels a side.
RUN_ARGS = [
    "model=airbench",
    "model.widths=[8,16,16]",
    "data.val_size=20",
    "data.batch_size=30",
    "data.eval_batch_size=50",
    "data.train_sizes=[16,24,0]",
    "augment=airbench",
    "scheduler=onecycle",
    "trainer.max_epochs=3",
    "callbacks.save_every_n_steps=4",
    "callbacks.model_checkpoint.monitor=step",
    *QUIET,
]
KILL_STEP = 10  # epoch 1 (24 px), after the step checkpoint of step 8


def test_sigkill_in_a_shrunk_epoch_then_resume_is_identical(tmp_path: Path, synthetic_data_dir):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    train_here(RUN_ARGS, reference, synthetic_data_dir)

    def args(*extra: str) -> list[str]:
        return [
            f"paths.data_dir={synthetic_data_dir}",
            f"hydra.run.dir={interrupted}",
            *RUN_ARGS,
            *extra,
        ]

    kill_args, folder = signal_callback_args(tmp_path / "cb", KILL_STEP, "SIGKILL")
    killed = run_train(args(*kill_args), folder)
    assert killed.returncode == -signal.SIGKILL, explain(killed)
    assert last_state(interrupted)["global_step"] == 8
    final = run_train(args("resume=auto"))
    assert final.returncode == 0, explain(final)

    expected, got = last_state(reference), last_state(interrupted)
    assert got["global_step"] == expected["global_step"] == 18
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), f"{name} differs after resume"
    metrics_a = json.loads((reference / "metrics.json").read_text())
    metrics_b = json.loads((interrupted / "metrics.json").read_text())
    assert {k: metrics_a[k] for k in COMPARED} == {k: metrics_b[k] for k in COMPARED}
