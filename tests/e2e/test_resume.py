"""Kill-safe training: SIGTERM/SIGKILL + `resume=auto` end bit-identical to an uninterrupted run;
atomic checkpoint writes; one-line errors for corrupt or foreign checkpoints; seeded data order."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from cnnlab.config import compose_run_config
from cnnlab.errors import CnnlabError
from cnnlab.training.task import train
from tests.helpers.train_cli import QUIET, explain, run_train, signal_callback_args

# 180 training images / batch 16 = 12 steps per epoch, 36 in all; last.ckpt every 5 steps.
# Dropout, flip/crop augmentation, SGD momentum and a per-step OneCycle schedule: every piece
# of state a resume must restore is exercised. Best checkpoint = latest (monitor=step), so the
# test metrics are those of the final weights.
RUN_ARGS = [
    "data.val_size=20",
    "data.batch_size=16",
    "data.eval_batch_size=50",
    "model.dropout=0.3",
    "scheduler=onecycle",
    "trainer.max_epochs=3",
    "callbacks.save_every_n_steps=5",
    "callbacks.model_checkpoint.monitor=step",
    *QUIET,
]
TERM_STEP = 8  # mid-epoch 0: SIGTERM saves last.ckpt at exactly this step
KILL_STEP = 17  # mid-epoch 1: the last step checkpoint before it is step 15
COMPARED = ("test/acc", "test/loss", "test/f1", "test/precision", "test/recall", "epochs")


def args_for(data_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    return [f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", *RUN_ARGS, *extra]


def last_state(run_dir: Path) -> dict[str, Any]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def train_here(overrides: list[str], run_dir: Path, data_dir: Path) -> dict[str, Any]:
    """The same run in this process, on one thread like the subprocesses."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(compose_run_config(overrides, run_dir, data_dir))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, synthetic_data_dir: Path) -> dict[str, Any]:
    """An uninterrupted run, and one stopped by SIGTERM, resumed, SIGKILLed, resumed again.

    The uninterrupted reference runs in this process (saves a interpreter start); the
    interrupted one in subprocesses, killed for real.
    """
    root = tmp_path_factory.mktemp("resume")
    reference, interrupted = root / "reference", root / "interrupted"
    out: dict[str, Any] = {"reference": reference, "interrupted": interrupted}
    train_here(RUN_ARGS, reference, synthetic_data_dir)

    term_args, folder = signal_callback_args(root / "cb", TERM_STEP, "SIGTERM")
    out["term"] = run_train(args_for(synthetic_data_dir, interrupted, *term_args), folder)
    out["term_state"] = last_state(interrupted) if out["term"].returncode else None

    kill_args, _ = signal_callback_args(root / "cb", KILL_STEP, "SIGKILL")
    resume = ["resume=auto"]
    out["kill"] = run_train(args_for(synthetic_data_dir, interrupted, *resume, *kill_args), folder)
    out["kill_state"] = last_state(interrupted) if out["kill"].returncode else None

    out["final"] = run_train(args_for(synthetic_data_dir, interrupted, *resume))
    return out


def test_sigterm_saves_a_resumable_checkpoint_and_exits_143(runs: dict[str, Any]) -> None:
    term = runs["term"]
    assert term.returncode == 128 + signal.SIGTERM, explain(term)
    assert "interrupted (SIGTERM)" in term.stderr and "resume=auto" in term.stderr
    state = runs["term_state"]
    assert state["global_step"] == TERM_STEP  # saved at the batch boundary, nothing lost
    assert state["CIFAR10DataModule"]["train_position"] == (0, TERM_STEP * 16)
    assert not list((runs["interrupted"] / "checkpoints").glob(".*partial"))


def test_sigkill_then_resume_ends_identical_to_an_uninterrupted_run(runs: dict[str, Any]) -> None:
    kill, final = runs["kill"], runs["final"]
    assert kill.returncode == -signal.SIGKILL, explain(kill)
    assert runs["kill_state"]["global_step"] == 15  # the step checkpoint before the kill
    assert final.returncode == 0, explain(final)
    # Both later processes continued from last.ckpt: a fresh run would match the reference too.
    restored = (
        f"Restoring states from the checkpoint path at {runs['interrupted']}/checkpoints/last.ckpt"
    )
    assert restored in kill.stdout + kill.stderr
    assert restored in final.stdout + final.stderr

    expected, got = last_state(runs["reference"]), last_state(runs["interrupted"])
    assert got["global_step"] == expected["global_step"] == 36
    assert expected["state_dict"].keys() == got["state_dict"].keys()
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), f"{name} differs after resume"
    for group_a, group_b in zip(
        expected["optimizer_states"][0]["state"].values(),
        got["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        assert torch.equal(group_a["momentum_buffer"], group_b["momentum_buffer"])

    metrics_a = json.loads((runs["reference"] / "metrics.json").read_text())
    metrics_b = json.loads((runs["interrupted"] / "metrics.json").read_text())
    assert {k: metrics_a[k] for k in COMPARED} == {k: metrics_b[k] for k in COMPARED}
    assert metrics_a["per_class"] == metrics_b["per_class"]
    assert Path(metrics_a["best_checkpoint"]).name == Path(metrics_b["best_checkpoint"]).name


def validation_rows(run_dir: Path) -> dict[tuple[str, str], str]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        rows = csv.DictReader(handle)
        return {(r["epoch"], r["step"]): r["val/acc"] for r in rows if r["val/acc"]}


def test_resumed_run_keeps_the_metrics_logged_before_each_interruption(runs) -> None:
    """metrics.csv of the run stopped twice holds every epoch's validation row, as the
    uninterrupted run's does (Lightning's own CSV writer would delete the file on resume)."""
    expected = validation_rows(runs["reference"])
    assert [epoch for epoch, _ in expected] == ["0", "1", "2"]
    assert validation_rows(runs["interrupted"]) == expected


def test_resume_auto_on_a_finished_run_reports_it_without_training(runs, tmp_path) -> None:
    reference = runs["reference"]
    before = (reference / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    # No data at all: a finished run must not even load it.
    metrics = train(compose_run_config(["resume=auto", *RUN_ARGS], reference, tmp_path / "none"))
    assert (reference / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before
    assert metrics == json.loads((reference / "metrics.json").read_text())


# -- checkpoint files ----------------------------------------------------------------------
def test_corrupt_checkpoint_is_one_line_naming_the_file(make_cfg, runs, tmp_path) -> None:
    truncated = tmp_path / "truncated.ckpt"
    whole = (runs["reference"] / "checkpoints" / "last.ckpt").read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    cfg = make_cfg([f"ckpt_path={truncated}", *RUN_ARGS])
    with pytest.raises(CnnlabError) as err:
        train(cfg)
    message = str(err.value)
    assert (
        message.startswith(f"{truncated}: corrupt or unreadable checkpoint") and "\n" not in message
    )


def test_checkpoint_of_another_model_is_refused_in_one_line(make_cfg, runs) -> None:
    last = runs["reference"] / "checkpoints" / "last.ckpt"
    cfg = make_cfg([f"ckpt_path={last}", "model=cifar10netv2", *RUN_ARGS[:-1]])
    with pytest.raises(CnnlabError) as err:
        train(cfg)
    message = str(err.value)
    assert message.startswith(f"{last}: checkpoint does not fit this model") and "\n" not in message
    assert "cnnlab.models.simple_cnn.SimpleCNN" in message


def test_resume_auto_refuses_a_run_dir_of_another_config(make_cfg, runs) -> None:
    cfg = make_cfg(["resume=auto", "optim.lr=0.5", *RUN_ARGS], output_dir=runs["interrupted"])
    with pytest.raises(CnnlabError, match=r"another config \(optim\.lr: 0\.05 -> 0\.5 and 1 more"):
        train(cfg)
