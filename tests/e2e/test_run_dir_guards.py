"""Refusals touch nothing: every check that can refuse a run happens before Hydra writes
into its dir, and what a refused or failed start leaves (.hydra/, the log) is not a run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cnnlab.checkpoints.resume import holds_a_run
from cnnlab.config import compose_run_config
from cnnlab.sweeps.hydra_callbacks import RefuseExistingRunDir
from cnnlab.training.task import train
from tests.helpers.train_cli import QUIET, explain, run_train

TINY = [
    "data.val_size=20",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "trainer.precision=32-true",
    *QUIET,
]


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `folder` with its mtime and bytes."""
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_resume_of_another_config_is_refused_before_anything_is_written(
    tmp_path: Path, synthetic_data_dir: Path
) -> None:
    run = tmp_path / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(compose_run_config(TINY, run, synthetic_data_dir))
    finally:
        torch.set_num_threads(threads)
    hydra_files = {"config.yaml": "model: simple_cnn\n", "hydra.yaml": "x\n", "overrides.yaml": []}
    (run / ".hydra").mkdir()
    for name, text in hydra_files.items():
        (run / ".hydra" / name).write_text(str(text))
    before = snapshot(run)

    other = [
        f"paths.data_dir={synthetic_data_dir}",
        f"hydra.run.dir={run}",
        "resume=auto",
        "model=cifar10netv2",
        *TINY,
    ]
    refused = run_train(other)
    assert refused.returncode == 2, explain(refused)
    assert last_line(refused.stderr).startswith(
        f"cnnlab: error: {run}/checkpoints/last.ckpt: resume=auto found a run of another config"
    )
    assert snapshot(run) == before  # not even the log file was created


def test_a_failed_config_check_writes_nothing_and_leaves_the_dir_free(
    tmp_path: Path, synthetic_data_dir: Path
) -> None:
    run = tmp_path / "run"
    bad = run_train([f"hydra.run.dir={run}", "optim.lr=-1", *TINY])
    assert bad.returncode == 2, explain(bad)
    assert last_line(bad.stderr) == (
        "cnnlab: error: optim.lr must be > 0 (got -1); e.g. optim.lr=0.01"
    )
    assert not run.exists()

    # What a start that failed later leaves (Hydra's files and log) does not block the dir,
    # nor do temp files of interrupted writes; a checkpoint or metrics.json does.
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("optim: {lr: -1}\n")
    (run / "train.log").write_text("")
    (run / ".metrics.json.x1y2.partial").write_text("{")
    assert not holds_a_run(run)
    corrected = compose_run_config([f"hydra.run.dir={run}", *TINY], run)
    RefuseExistingRunDir().on_run_start(corrected)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert holds_a_run(run)
    with pytest.raises(SystemExit) as refused:
        RefuseExistingRunDir().on_run_start(corrected)
    assert refused.value.code == 2


UNWRITABLE = ["parent is a file"] + (["read-only dir"] if os.geteuid() != 0 else [])


@pytest.mark.parametrize("case", UNWRITABLE)
def test_an_unwritable_run_dir_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    """Root ignores permission bits, so as root only the "parent is a file" case runs (mkdir
    fails with ENOTDIR, for every user); both reach the same check."""
    if case == "parent is a file":
        (tmp_path / "taken").write_text("")
        run, cause = tmp_path / "taken" / "run", "Not a directory"
    else:
        (tmp_path / "locked").mkdir(mode=0o555)
        run, cause = tmp_path / "locked" / "run", "Permission denied"
    result = run_train([f"hydra.run.dir={run}", *TINY])
    assert result.returncode == 2, explain(result)
    assert last_line(result.stderr).startswith(f"cnnlab: error: cannot write {run}: {cause};")
    assert "Traceback" not in result.stderr


def test_an_unknown_resume_mode_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = compose_run_config([f"hydra.run.dir={tmp_path / 'run'}", "resume=yes"], tmp_path / "run")
    with pytest.raises(SystemExit) as refused:
        RefuseExistingRunDir().on_run_start(cfg)
    assert refused.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "cnnlab: error: resume must be auto or null (got 'yes'); to start from a file use "
        "ckpt_path=<file>"
    )
    assert not (tmp_path / "run").exists()
