"""A full disk anywhere a run writes is one line naming the file and the cause (exit 2), and
leaves no temp file behind.

The disk fills for real: the file under test is opened on /dev/full, where every write fails
with ENOSPC from the kernel, as on a full disk. (No tmpfs mount is needed, so this runs
unprivileged, in CI too.)
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

import cnnlab.checkpoints.atomic as atomic
from cnnlab.data import fashion_mnist
from cnnlab.errors import EXIT_USAGE, CnnlabError, exits_cleanly
from cnnlab.training.task import train

pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")

TINY = [
    "data=fashion_mnist",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "trainer.precision=32-true",
    "callbacks.save_every_n_steps=1",
    "callbacks.rich_progress_bar=null",
    "logger=csv",
]
FULL = os.strerror(errno.ENOSPC)  # "No space left on device"


def fill_disk_for(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Atomic writes of `name` go to /dev/full (their temp file is still created, so the
    test also sees that it is removed)."""
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, path = real_mkstemp(*args, **kwargs)
        if kwargs.get("prefix", "").startswith(f".{name}."):
            os.close(fd)
            fd = os.open("/dev/full", os.O_WRONLY)
        return fd, path

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)


def partial_files(run: Path) -> list[Path]:
    return list(run.rglob("*.partial"))


def test_a_full_disk_while_saving_a_checkpoint_is_one_line(make_cfg, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    fill_disk_for(monkeypatch, "last.ckpt")
    with pytest.raises(SystemExit) as stop:
        exits_cleanly(train)(make_cfg(TINY, output_dir=run))
    assert stop.value.code == EXIT_USAGE
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (
        f"cnnlab: error: cannot write {run}/checkpoints/last.ckpt: {FULL}; free space on "
        "that disk, or write the run elsewhere (hydra.run.dir=<dir>)"
    )
    assert not partial_files(run)


def test_a_full_disk_while_writing_metrics_json_is_one_line(make_cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"
    fill_disk_for(monkeypatch, "metrics.json")
    with pytest.raises(CnnlabError, match=f"^cannot write {run}/metrics.json: {FULL};"):
        train(make_cfg(TINY, output_dir=run))
    assert not (run / "metrics.json").exists() and not partial_files(run)
    assert (run / "checkpoints" / "last.ckpt").is_file()  # resume=auto re-runs the test


def test_a_full_disk_while_writing_logs_is_one_line(make_cfg, tmp_path, monkeypatch):
    """Loggers write without naming the file (a failed flush): the line names the run dir."""

    def save(self: ExperimentWriter) -> None:
        with open("/dev/full", "w") as handle:
            handle.write("step,train/loss\n")

    monkeypatch.setattr(ExperimentWriter, "save", save)
    run = tmp_path / "run"
    with pytest.raises(CnnlabError, match=f"^cannot write {run}: {FULL};"):
        train(make_cfg(TINY, output_dir=run))


def test_reading_errors_are_not_reported_as_output_errors(make_cfg, tmp_path, monkeypatch):
    """Only errors about the run's own files become 'cannot write' lines."""
    # Debian's dataset-fashion-mnist, where installed, would be found instead.
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian-here")
    with pytest.raises(CnnlabError, match="not found"):
        train(make_cfg(TINY, data_dir=tmp_path / "none", output_dir=tmp_path / "run"))
