"""Lightning features one option away: weight averaging, debug presets, conf/local, the
config tree printed at the start of a run."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch
from lightning.pytorch.profilers import SimpleProfiler

import cnnlab.config
from cnnlab.config import compose_run_config
from cnnlab.paths import CONFIG_DIR, REPO_ROOT
from cnnlab.training.config_tree import print_config_tree
from cnnlab.training.task import build_run, train

QUIET = ["callbacks.rich_progress_bar=null", "trainer.enable_progress_bar=false"]


def model_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith("model.")}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ema_checkpoints_and_tests_the_averaged_weights(make_cfg):
    cfg = make_cfg(
        ["callbacks=[default,ema]", "callbacks.ema.decay=0.5", "trainer.max_epochs=2", *QUIET]
    )
    datamodule, module, trainer = build_run(cfg)
    trainer.fit(module, datamodule=datamodule)
    best = trainer.checkpoint_callback.best_model_path
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    averaged = model_weights(checkpoint["state_dict"])
    raw = model_weights(checkpoint["current_model_state"])
    assert not same(averaged, raw)  # the average is not the weights training reached
    trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    assert same(model_weights(module.state_dict()), averaged)  # the test scored the average


def test_swa_makes_the_average_the_final_and_tested_model(make_cfg, tmp_path):
    overrides = ["callbacks=[default,swa]", "callbacks.swa.swa_epoch_start=1"]
    metrics = train(make_cfg([*overrides, "trainer.max_epochs=3", *QUIET]))
    assert metrics["best_checkpoint"] is None  # tested: the final (averaged) weights
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    swa = last["callbacks"]["StochasticWeightAveraging"]
    assert swa["n_averaged"] >= 2  # the later epochs' weights were averaged
    assert same(model_weights(last["state_dict"]), model_weights(swa["average_model_state"]))


def test_debug_limit_runs_a_few_batches_of_each_split(make_cfg):
    metrics = train(make_cfg(["debug=limit", "data.batch_size=16", *QUIET]))
    assert metrics["epochs"] == 2 and metrics["global_step"] == 2 * 5
    assert "test/acc" in metrics


def test_debug_profiler_and_anomaly_presets(make_cfg):
    _, _, trainer = build_run(make_cfg(["debug=profiler"]))
    assert isinstance(trainer.profiler, SimpleProfiler) and trainer.max_epochs == 1
    _, _, trainer = build_run(make_cfg(["debug=anomaly"]))
    assert trainer._detect_anomaly


def test_local_config_sets_machine_defaults_below_the_command_line(
    monkeypatch, tmp_path, synthetic_data_dir
):
    conf = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, conf)
    (conf / "local" / "default.yaml").write_text(
        "# @package _global_\nseed: 7\ndata:\n  num_workers: 0\n"
    )
    monkeypatch.setattr(cnnlab.config, "CONFIG_DIR", conf)
    cfg = compose_run_config(["experiment=quickstart"], tmp_path / "run", synthetic_data_dir)
    assert cfg.seed == 7 and cfg.data.num_workers == 0 and cfg.task_name == "quickstart"
    cfg = compose_run_config(["seed=3"], tmp_path / "run", synthetic_data_dir)
    assert cfg.seed == 3


def test_local_config_is_git_ignored_but_its_example_is_not():
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        check = ["git", "-C", str(REPO_ROOT), "check-ignore", "-q", path]
        return subprocess.run(check).returncode == 0

    assert ignored("conf/local/default.yaml")
    assert not ignored("conf/local/default.yaml.example")


def test_config_tree_names_each_group_option_and_its_values(make_cfg, capsys):
    print_config_tree(make_cfg(["model=cifar10netv2", "optim=adamw", "tags=[baseline]"]))
    out = capsys.readouterr().out
    for line in ("model: cifar10netv2", "optim: adamw", "lr: 0.001", "tags: [baseline]"):
        assert line in out, line
