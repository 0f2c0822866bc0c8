"""Multirun summary, a sweep killed half-way and re-run, k-fold sweeps, launchers and their
devices."""

from __future__ import annotations

import csv
import json
import signal
import statistics
from pathlib import Path

import hydra
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict, read_write

from cnnlab.config import compose_run_config
from cnnlab.sweeps import devices
from cnnlab.sweeps.hydra_callbacks import RefuseExistingRunDir
from cnnlab.sweeps.summary import upsert_row
from cnnlab.verbs.report import report
from tests.helpers.train_cli import QUIET, explain, run_train, signal_callback_args

TINY = [
    "data.val_size=20",
    "data.batch_size=32",
    "trainer.max_epochs=2",
    "callbacks.save_every_n_steps=2",
    *QUIET,
]


def summary(sweep_dir: Path) -> tuple[list[dict], list[dict]]:
    rows = json.loads((sweep_dir / "summary.json").read_text())
    with open(sweep_dir / "summary.csv", newline="") as handle:
        return rows, list(csv.DictReader(handle))


def test_sweep_summary_failure_kill_and_resume(tmp_path: Path, synthetic_data_dir: Path) -> None:
    """3 jobs: a bad lr fails (the sweep goes on), one finishes, one is SIGKILLed mid-training
    (killing the whole sweep). The same command plus resume=auto then keeps the finished job,
    continues the killed one from its last.ckpt and records every job."""
    sweep = tmp_path / "sweep"
    # 6 steps per epoch; the sweep's 2nd fit (job 2: job 0 fails before fitting) dies at step 5.
    kill, folder = signal_callback_args(tmp_path / "cb", step=5, signum="SIGKILL", fit_index=1)
    command = [
        "-m",
        f"paths.data_dir={synthetic_data_dir}",
        f"hydra.sweep.dir={sweep}",
        "optim.lr=-1,0.01,0.02",
        *TINY,
        *kill,
    ]
    killed = run_train(command, folder)
    assert killed.returncode == -signal.SIGKILL, explain(killed)
    assert "cnnlab: error: optim.lr must be > 0 (got -1)" in killed.stderr
    rows, csv_rows = summary(sweep)
    assert [(r["job"], r["status"]) for r in rows] == [(0, "failed"), (1, "completed")]
    assert rows[0]["error"].startswith("CnnlabError: optim.lr must be > 0")
    assert rows[1]["optim.lr"] == "0.01" and rows[1]["epochs"] == 2
    assert 0 <= rows[1]["test/acc"] <= 1 and rows[1]["run_dir"] == str(sweep / "1")
    assert [(r["job"], r["status"], r["optim.lr"]) for r in csv_rows] == [
        ("0", "failed", "-1"),
        ("1", "completed", "0.01"),
    ]
    assert (sweep / "2" / "checkpoints" / "last.ckpt").is_file()
    finished_ckpt = sweep / "1" / "checkpoints" / "last.ckpt"
    finished_mtime = finished_ckpt.stat().st_mtime_ns

    rerun = run_train([*command, "resume=auto"], folder)
    assert rerun.returncode == 1, explain(rerun)  # job 0 still fails: the sweep reports it
    assert "Restoring states from the checkpoint path at " + str(
        sweep / "2" / "checkpoints" / "last.ckpt"
    ) in (rerun.stdout + rerun.stderr)
    assert finished_ckpt.stat().st_mtime_ns == finished_mtime  # job 1 was not trained again
    rows, csv_rows = summary(sweep)
    assert [(r["job"], r["status"]) for r in rows] == [
        (0, "failed"),
        (1, "completed"),
        (2, "completed"),
    ]
    assert rows[2]["global_step"] == 12 and rows[2]["optim.lr"] == "0.02"
    assert len(csv_rows) == 3


def test_a_used_sweep_dir_is_refused_without_resume(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    cfg = compose_run_config([f"hydra.sweep.dir={sweep}"], tmp_path / "run")
    with pytest.raises(SystemExit) as stop:
        RefuseExistingRunDir().on_multirun_start(cfg)
    assert stop.value.code == 2
    RefuseExistingRunDir().on_multirun_start(
        compose_run_config([f"hydra.sweep.dir={sweep}", "resume=auto"], tmp_path / "run")
    )


def test_summary_rows_are_replaced_by_run_dir(tmp_path: Path) -> None:
    upsert_row(tmp_path, {"job": 1, "status": "failed", "run_dir": "b", "error": "x"})
    upsert_row(tmp_path, {"job": 0, "status": "completed", "run_dir": "a", "test/acc": 0.5})
    rows = upsert_row(tmp_path, {"job": 1, "status": "completed", "run_dir": "b", "error": ""})
    assert [(r["job"], r["status"]) for r in rows] == [(0, "completed"), (1, "completed")]
    header = (tmp_path / "summary.csv").read_text().splitlines()[0]
    assert header == "job,status,run_dir,test/acc,error"


@pytest.mark.parametrize(
    ("overrides", "target", "expected"),
    [
        (["launcher=joblib"], "JoblibLauncher", {"n_jobs": 2}),
        (
            ["launcher=slurm", "hydra.launcher.gpus_per_node=4"],
            "SlurmLauncher",
            {"tasks_per_node": 4, "max_num_timeout": 3, "timeout_min": 240},
        ),
    ],
)
def test_launcher_configs_compose(tmp_path, overrides, target, expected) -> None:
    cfg = compose_run_config(overrides, tmp_path / "run")
    node = cfg.hydra.launcher
    assert node._target_.endswith(target)
    assert {key: node[key] for key in expected} == expected
    plugin = hydra.utils.instantiate(node)  # the plugin accepts every key
    assert type(plugin).__name__ == target


def job_trainer_devices(tmp_path: Path, overrides: list[str], job: int) -> object:
    """`trainer.devices` as job `job` of a joblib sweep resolves it (Hydra sets job.num)."""
    cfg = compose_run_config(["launcher=joblib", *overrides], tmp_path / "run")
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.job.num = job
    HydraConfig.instance().set_config(cfg)
    return OmegaConf.to_container(cfg.trainer, resolve=True)["devices"]


def test_joblib_jobs_take_the_visible_gpus_round_robin(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert [job_trainer_devices(tmp_path, [], job) for job in range(5)] == [
        [0], [1], [2], [0], [1]
    ]  # fmt: skip
    assert job_trainer_devices(tmp_path, ["trainer=gpu"], 4) == [1]
    assert job_trainer_devices(tmp_path, ["trainer=cpu"], 4) == 1  # CPU jobs: one device each
    assert job_trainer_devices(tmp_path, ["trainer.devices=2"], 4) == 2  # the user's choice wins
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert job_trainer_devices(tmp_path, [], 4) == 1  # no GPU: as without the launcher


def test_search_workers_get_one_gpu_each(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [devices.worker_environment(w)["CUDA_VISIBLE_DEVICES"] for w in range(3)] == [
        "0", "1", "0"
    ]  # fmt: skip
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")  # the user's selection is the pool
    assert [devices.worker_environment(w)["CUDA_VISIBLE_DEVICES"] for w in range(2)] == ["4", "6"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert devices.worker_environment(1)["CUDA_VISIBLE_DEVICES"] == "5"


def test_a_sweep_over_folds_gives_mean_and_std_in_summary_and_report(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_train(
        [
            "-m",
            f"hydra.sweep.dir={sweep}",
            "experiment=tabular",
            "data=wine",
            "data.folds=3",
            "data.fold=0,1,2",
            "trainer.max_epochs=3",
            "trainer.precision=32-true",
            *QUIET,
        ]
    )
    assert result.returncode == 0, explain(result)
    rows, _ = summary(sweep)
    assert [(r["data.fold"], r["status"]) for r in rows] == [
        ("0", "completed"), ("1", "completed"), ("2", "completed")
    ]  # fmt: skip
    val = [r["best_val_acc"] for r in rows]
    test = [r["test/acc"] for r in rows]
    assert len(set(val)) > 1  # three different held-out folds
    (group,) = json.loads((sweep / "folds.json").read_text())
    assert group["folds"] == 3 and group["data.fold"] == "0,1,2"
    assert "data.fold=" not in group["overrides"] and "data.folds=3" in group["overrides"]
    assert group["best_val_acc mean"] == pytest.approx(statistics.fmean(val))
    assert group["best_val_acc std"] == pytest.approx(statistics.stdev(val))
    assert group["test/acc mean"] == pytest.approx(statistics.fmean(test))
    assert (sweep / "folds.csv").read_text().startswith("overrides,folds,data.fold,")

    report([sweep], tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    section = markdown.split("## Cross-validation", 1)[1].split("\n## ", 1)[0]
    mean, std = 100 * statistics.fmean(val), 100 * statistics.stdev(val)
    assert f"| #1, #2, #3 | all | 3 | {mean:.2f} ± {std:.2f} |" in section
