"""What a run leaves in its loggers: the documented scalar names and the hyperparameters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from cnnlab.config import compose_run_config
from cnnlab.paths import REPO_ROOT
from cnnlab.training.module import SCALARS, ClassificationModule
from cnnlab.training.task import train

DOCS = REPO_ROOT / "docs" / "ecosystem.md"


@pytest.fixture(scope="module")
def logged_run(synthetic_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short epochs with TensorBoard and CSV logs, tagged, every step logged."""
    run_dir = tmp_path_factory.mktemp("logged_run")
    cfg = compose_run_config(
        [
            "data.val_size=20",
            "logger=[tensorboard,csv]",
            "trainer.max_epochs=2",
            "trainer.log_every_n_steps=1",
            "optim.lr=0.05",
            "tags=[smoke,lr_sweep]",
            "callbacks.rich_progress_bar=null",
            "trainer.enable_progress_bar=false",
        ],
        run_dir,
        synthetic_data_dir,
    )
    train(cfg)
    return run_dir


def events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    return accumulator


def documented_scalars() -> list[str]:
    """The names in the table under docs/ecosystem.md's `## Logged scalars` heading."""
    section = DOCS.read_text().split("## Logged scalars", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)`", section, flags=re.MULTILINE)


def test_logged_scalar_names_are_the_documented_ones(logged_run):
    tags = set(events(logged_run).Tags()["scalars"])
    assert {t for t in tags if not t.startswith("test_per_class/")} == set(SCALARS)
    assert any(t.startswith("test_per_class/f1/") for t in tags)
    assert documented_scalars() == list(SCALARS)


def test_hyperparameters_read_back_from_the_tensorboard_event_file(logged_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    accumulator = events(logged_run)
    content = accumulator.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    params = {k: getattr(v, v.WhichOneof("kind")) for k, v in session.hparams.items()}
    assert params["optim.lr"] == pytest.approx(0.05)
    assert params["optim._target_"] == "torch.optim.SGD"
    assert params["model"] == "simple_cnn" and params["augment"] == "flip_crop"
    assert params["data.batch_size"] == 128 and params["seed"] == 42
    assert params["tags"] == "smoke, lr_sweep"
    assert not any(k.startswith(("paths.", "hydra.")) for k in params)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]
    ).experiment
    assert [m.name.tag for m in experiment.metric_infos] == list(ClassificationModule.compared_on)
    # The metric columns read the logged curves: no placeholder point was added to them.
    assert len(accumulator.Scalars("val/acc")) == 2


def test_hyperparameters_in_the_csv_logs_hparams_yaml_and_tags_in_metrics_json(logged_run):
    hparams = yaml.safe_load((logged_run / "csv" / "hparams.yaml").read_text())
    assert hparams["optim.lr"] == pytest.approx(0.05) and hparams["model"] == "simple_cnn"
    assert hparams["tags"] == "smoke, lr_sweep"
    metrics = json.loads((logged_run / "metrics.json").read_text())
    assert metrics["tags"] == ["smoke", "lr_sweep"]


@pytest.mark.parametrize("option", ["mlflow", "wandb"])
def test_optional_logger_without_its_package_is_one_line_naming_the_extra(
    make_cfg, monkeypatch, option
):
    import importlib.util

    from cnnlab.errors import CnnlabError
    from cnnlab.training.task import build_run

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == option else real(name, *a)
    )
    with pytest.raises(CnnlabError, match=rf"pip install -e '\.\[{option}\]'"):
        build_run(make_cfg([f"logger={option}"]))
