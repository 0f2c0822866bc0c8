"""The fault matrix: a run interrupted at any phase, by SIGKILL, SIGTERM or SIGINT, and then
continued with `resume=auto`, ends exactly as the uninterrupted run does: the same weights,
optimizer and schedule state, the same best checkpoint, the same metrics.json (timings aside).

Each fault is injected deterministically (`CNNLAB_FAULT=<phase>:<signal>[:<n>]`, see
`cnnlab.faults`), so every cell interrupts the run at the same point each time. SIGKILL
needs a process of its own (`python train.py`, several at once); SIGTERM and SIGINT are
handled inside the process, so those cells, every resume and the reference run in this
one, which saves an interpreter start each.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import cnnlab.faults
from cnnlab.config import compose_run_config
from cnnlab.errors import CnnlabError
from cnnlab.faults import FAULT_ENV
from cnnlab.training.callbacks.faults import fault_injection
from cnnlab.training.task import train
from tests.helpers.train_cli import QUIET, explain, run_train

# 180 training images / batch 30: 6 steps per epoch. last.ckpt every 3 steps, so the last
# step of each epoch is a save step (written as "validation pending"). Dropout, a plateau
# schedule that halves the lr after any epoch without improvement, and early stopping with
# patience 1: the reference trains 3 of at most 5 epochs (18 steps), best at epoch 1, and
# each of those depends on a validation or an epoch end that a resume must not skip.
RUN_ARGS = [
    "data.val_size=20",
    "data.batch_size=30",
    "data.eval_batch_size=8",
    "model.dropout=0.3",
    "optim.lr=0.01",
    "scheduler=plateau",
    "scheduler.scheduler.patience=0",
    "callbacks.early_stopping.patience=1",
    "trainer.max_epochs=5",
    "trainer.precision=32-true",
    "callbacks.save_every_n_steps=3",
    *QUIET,
]
STEPS_PER_EPOCH = 6
TIMINGS = ("train_seconds", "run_dir", "best_checkpoint")


@dataclass(frozen=True)
class Cell:
    fault: str  # CNNLAB_FAULT
    resumes_from: int | None  # global step of the last.ckpt the interrupted run leaves
    pending_validation: bool = False  # that last.ckpt re-runs its epoch's validation

    @property
    def signum(self) -> signal.Signals:
        return signal.Signals[self.fault.split(":")[1]]

    @property
    def name(self) -> str:
        return self.fault.replace(":", "-")


CELLS = [
    # after step 10: SIGKILL resumes from the step-9 save, a signal saves step 10
    Cell("mid_step:SIGKILL:10", 9),
    Cell("mid_step:SIGTERM:10", 10),
    Cell("mid_step:SIGINT:10", 10),
    # after step 7, just past the epoch boundary: resumes from the finished epoch 0
    Cell("mid_step:SIGKILL:7", STEPS_PER_EPOCH),
    # the step-9 last.ckpt fsynced under its temp name, not yet renamed
    Cell("during_checkpoint_write:SIGKILL:9", STEPS_PER_EPOCH),
    Cell("during_checkpoint_write:SIGTERM:9", 9),
    # epoch 1's last step done (and saved), its validation not started
    Cell("epoch_end_before_val:SIGKILL:1", 2 * STEPS_PER_EPOCH, pending_validation=True),
    Cell("epoch_end_before_val:SIGTERM:1", 2 * STEPS_PER_EPOCH, pending_validation=True),
    # after epoch 1's first validation batch: the validation re-runs from its start
    Cell("during_val:SIGKILL:1", 2 * STEPS_PER_EPOCH, pending_validation=True),
    Cell("during_val:SIGTERM:1", 2 * STEPS_PER_EPOCH, pending_validation=True),
    Cell("during_val:SIGINT:1", 2 * STEPS_PER_EPOCH, pending_validation=True),
    # training stopped early and saved; the final test is interrupted and re-runs
    Cell("during_test:SIGKILL", 3 * STEPS_PER_EPOCH),
    Cell("during_test:SIGTERM", 3 * STEPS_PER_EPOCH),
    Cell("during_test:SIGINT", 3 * STEPS_PER_EPOCH),
    # metrics.json written under its temp name, not yet renamed
    Cell("writing_metrics:SIGKILL", 3 * STEPS_PER_EPOCH),
    Cell("writing_metrics:SIGTERM", 3 * STEPS_PER_EPOCH),
]


@contextlib.contextmanager
def planned_fault(fault: str | None) -> Iterator[None]:
    """CNNLAB_FAULT for a run in this process (each run may fire its fault once)."""
    previous = os.environ.pop(FAULT_ENV, None)
    if fault:
        os.environ[FAULT_ENV] = fault
    cnnlab.faults._fired = False
    try:
        yield
    finally:
        os.environ.pop(FAULT_ENV, None)
        if previous is not None:
            os.environ[FAULT_ENV] = previous
        cnnlab.faults._fired = False


@pytest.mark.parametrize(
    "spec", ["mid_step", "mid_step:SIGHUP", "in_validation:SIGKILL", "mid_step:SIGKILL:x"]
)
def test_a_malformed_fault_is_one_line(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv(FAULT_ENV, spec)
    with pytest.raises(CnnlabError, match=f"^{FAULT_ENV}='{spec}' is not <phase>:<signal>"):
        cnnlab.faults.planned_fault()


def test_no_fault_is_planned_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULT_ENV, raising=False)
    assert cnnlab.faults.planned_fault() is None and fault_injection() == []


def train_here(run_dir: Path, data_dir: Path, *extra: str) -> dict[str, Any]:
    """The run in this process, on one thread like the subprocesses."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(compose_run_config([*RUN_ARGS, *extra], run_dir, data_dir))
    finally:
        torch.set_num_threads(threads)


def interrupt_here(cell: Cell, run_dir: Path, data_dir: Path) -> tuple[int, str]:
    """(exit code, stderr) of the run stopped by the cell's signal, in this process."""
    stderr = io.StringIO()
    with (
        planned_fault(cell.fault),
        contextlib.redirect_stderr(stderr),
        pytest.raises(SystemExit) as stop,
    ):
        train_here(run_dir, data_dir)
    return int(stop.value.code), stderr.getvalue()


def last_state(run_dir: Path) -> dict[str, Any]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


@dataclass
class Matrix:
    root: Path
    data_dir: Path
    reference: Path
    killed: dict[str, Future[subprocess.CompletedProcess[str]]]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, synthetic_data_dir: Path) -> Iterator[Matrix]:
    """The SIGKILL runs start at once, two at a time, while the reference runs here."""
    root = tmp_path_factory.mktemp("fault_matrix")
    with ThreadPoolExecutor(max_workers=2) as pool:
        killed = {
            cell.name: pool.submit(
                run_train,
                [
                    f"paths.data_dir={synthetic_data_dir}",
                    f"hydra.run.dir={root / cell.name}",
                    *RUN_ARGS,
                ],
                env={FAULT_ENV: cell.fault},
            )
            for cell in CELLS
            if cell.signum == signal.SIGKILL
        }
        reference = root / "reference"
        with planned_fault(None):
            train_here(reference, synthetic_data_dir)
        yield Matrix(root, synthetic_data_dir, reference, killed)


def test_the_reference_run_stops_early_after_three_epochs(matrix: Matrix) -> None:
    """What the cells rely on: the reference's early stop and best epoch are not the last."""
    metrics = json.loads((matrix.reference / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["global_step"]) == (3, 3 * STEPS_PER_EPOCH)
    assert Path(metrics["best_checkpoint"]).name.startswith("epoch001-")


@pytest.mark.parametrize("cell", CELLS, ids=lambda cell: cell.name)
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(matrix: Matrix, cell: Cell) -> None:
    run_dir = matrix.root / cell.name
    if cell.signum == signal.SIGKILL:
        killed = matrix.killed[cell.name].result()
        code, stderr = killed.returncode, killed.stderr
        assert code == -signal.SIGKILL, explain(killed)
    else:
        code, stderr = interrupt_here(cell, run_dir, matrix.data_dir)
        assert code == 128 + cell.signum, stderr
        assert f"cnnlab: interrupted ({cell.signum.name})" in stderr
        assert f"hydra.run.dir={run_dir} resume=auto" in stderr
    assert not (run_dir / "metrics.json").exists()
    if cell.signum == signal.SIGKILL and "writ" in cell.fault:  # killed mid-write
        assert list(run_dir.rglob(".*.partial")), "the kill left no temp file to clean"

    saved = last_state(run_dir)
    assert saved["global_step"] == cell.resumes_from
    assert saved.get("cnnlab_validation_pending", False) == cell.pending_validation

    with planned_fault(None):
        resumed = train_here(run_dir, matrix.data_dir, "resume=auto")

    expected = json.loads((matrix.reference / "metrics.json").read_text())
    recorded = json.loads((run_dir / "metrics.json").read_text())
    assert resumed == recorded
    assert {k: v for k, v in recorded.items() if k not in TIMINGS} == {
        k: v for k, v in expected.items() if k not in TIMINGS
    }
    assert Path(recorded["best_checkpoint"]).name == Path(expected["best_checkpoint"]).name

    want, got = last_state(matrix.reference), last_state(run_dir)
    assert (got["epoch"], got["global_step"]) == (want["epoch"], want["global_step"])
    for name, tensor in want["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), f"{name} differs after resume"
    for a, b in zip(
        want["optimizer_states"][0]["state"].values(),
        got["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert got["lr_schedulers"] == want["lr_schedulers"]
    early_stopping = next(key for key in want["callbacks"] if key.startswith("EarlyStopping"))
    assert got["callbacks"][early_stopping] == want["callbacks"][early_stopping]

    # One best checkpoint, the same file name; nothing half-written left anywhere.
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == sorted(p.name for p in (matrix.reference / "checkpoints").iterdir())
    assert not [p for p in run_dir.rglob("*.partial")]


# -- inside a -m sweep ---------------------------------------------------------------------
def sweep_command(data_dir: Path, sweep_dir: Path) -> list[str]:
    """Two jobs: job 0 trains one epoch, job 1 is the reference run's config."""
    args = [a for a in RUN_ARGS if not a.startswith("trainer.max_epochs=")]
    sweep = [f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep_dir}"]
    return ["-m", *sweep, *args, "trainer.max_epochs=1,5"]


def summary_rows(sweep_dir: Path) -> list[tuple[int, str]]:
    rows = json.loads((sweep_dir / "summary.json").read_text())
    return [(row["job"], row["status"]) for row in rows]


def assert_job_matches_reference(job_dir: Path, reference: Path) -> None:
    expected = json.loads((reference / "metrics.json").read_text())
    recorded = json.loads((job_dir / "metrics.json").read_text())
    assert {k: v for k, v in recorded.items() if k not in TIMINGS} == {
        k: v for k, v in expected.items() if k not in TIMINGS
    }
    want, got = last_state(reference), last_state(job_dir)
    for name, tensor in want["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), f"{name} differs after resume"


def test_a_sweep_killed_mid_job_and_mid_summary_finishes_on_resume(matrix: Matrix) -> None:
    """SIGKILL job 1 in its 2nd epoch, re-run the sweep with resume=auto while SIGKILL hits
    again as job 1's summary row is written, then re-run once more: job 0 is kept, job 1
    ends as the uninterrupted run, and the summary holds both jobs and no temp file."""
    sweep = matrix.root / "sweep_kill"
    command = sweep_command(matrix.data_dir, sweep)
    killed = run_train(command, env={FAULT_ENV: "in_sweep:SIGKILL:1"})
    assert killed.returncode == -signal.SIGKILL, explain(killed)
    assert summary_rows(sweep) == [(0, "completed")]
    assert last_state(sweep / "1")["global_step"] == STEPS_PER_EPOCH  # the finished epoch 0

    torn = run_train([*command, "resume=auto"], env={FAULT_ENV: "writing_summary:SIGKILL:1"})
    assert torn.returncode == -signal.SIGKILL, explain(torn)
    assert list(sweep.glob(".summary.json.*.partial"))
    assert summary_rows(sweep) == [(0, "completed")]

    finished = run_train([*command, "resume=auto"])
    assert finished.returncode == 0, explain(finished)
    assert summary_rows(sweep) == [(0, "completed"), (1, "completed")]
    assert not list(sweep.rglob("*.partial"))
    assert_job_matches_reference(sweep / "1", matrix.reference)


def test_a_sweep_stopped_by_sigterm_mid_job_finishes_on_resume(matrix: Matrix) -> None:
    sweep = matrix.root / "sweep_term"
    command = sweep_command(matrix.data_dir, sweep)
    stopped = run_train(command, env={FAULT_ENV: "in_sweep:SIGTERM:1"})
    assert stopped.returncode == 128 + signal.SIGTERM, explain(stopped)
    assert "cnnlab: interrupted (SIGTERM)" in stopped.stderr
    assert last_state(sweep / "1")["global_step"] == STEPS_PER_EPOCH + 1

    finished = run_train([*command, "resume=auto"])
    assert finished.returncode == 0, explain(finished)
    assert summary_rows(sweep) == [(0, "completed"), (1, "completed")]
    assert_job_matches_reference(sweep / "1", matrix.reference)
