"""logger=mlflow and logger=wandb: metrics and params read back with each library's own
classes, one finished run per job of a `-m` sweep (the jobs share one process)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cnnlab.training.module import SCALARS
from tests.helpers.train_cli import explain, run_train
from tests.helpers.wandb_files import read_offline_run

LOGGERS = [name for name in ("mlflow", "wandb") if importlib.util.find_spec(name)]
SEEDS = (1, 2)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, synthetic_data_dir: Path) -> Path:
    """A 2-job multirun (seed=1,2) logging to every installed optional logger."""
    if not LOGGERS:
        pytest.skip("neither the mlflow nor the wandb extra is installed")
    root = tmp_path_factory.mktemp("logger_sweep")
    result = run_train(
        [
            "-m",
            "experiment=quickstart",
            "debug=limit",
            "data.val_size=20",
            f"logger=[{','.join(LOGGERS)}]",
            "tags=[smoke]",
            f"seed={','.join(map(str, SEEDS))}",
            f"paths.log_dir={root}",
            f"hydra.sweep.dir={root / 'sweep'}",
            "print_config=false",
            "callbacks.rich_progress_bar=null",
            "trainer.enable_model_summary=false",
        ],
        data_dir=synthetic_data_dir,
        timeout=600,
    )
    assert result.returncode == 0, explain(result)
    return root


def test_mlflow_run_per_job_finished_with_params_and_metrics(sweep, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=f"file:{sweep / 'mlruns'}")
    experiment = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(int(r.data.params["seed"]) for r in runs) == list(SEEDS)
    for run in runs:
        assert run.info.status == "FINISHED"
        params = run.data.params
        assert params["model"] == "simple_cnn" and params["optim._target_"] == "torch.optim.Adam"
        assert params["tags"] == "smoke"
        job = Path(run.data.tags["run_dir"])
        assert job.parent == sweep / "sweep"
        assert set(SCALARS) <= set(run.data.metrics)
        assert len(client.get_metric_history(run.info.run_id, "val/acc")) == 2  # 2 epochs


def test_wandb_offline_run_per_job_with_config_and_history(sweep):
    pytest.importorskip("wandb")
    run_ids = set()
    for job, seed in enumerate(SEEDS):
        files = list((sweep / "sweep" / str(job) / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(files) == 1, files  # its own run, not the previous job's
        run = read_offline_run(files[0])
        run_ids.add(run.run_id)
        assert run.exit_code == 0 and run.tags == ["smoke"]
        assert run.config["seed"] == seed and run.config["model"] == "simple_cnn"
        logged = {key for row in run.history for key in row}
        assert set(SCALARS) <= logged
        assert len([row for row in run.history if "val/acc" in row]) == 2
    assert len(run_ids) == len(SEEDS)
