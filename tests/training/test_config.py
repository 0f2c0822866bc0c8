"""Config composition, value validation and run-dir safety."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from cnnlab.config import config_to_save
from cnnlab.errors import CnnlabError
from cnnlab.paths import CONFIG_DIR, REPO_ROOT
from cnnlab.training.task import train
from cnnlab.training.validation import validate_config

GROUPS = [
    "data",
    "model",
    "module",
    "optim",
    "scheduler",
    "augment",
    "trainer",
    "logger",
    "callbacks",
]
OPTIONAL_GROUPS = ["experiment", "debug"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override",
    [f"{g}={o}" for g in GROUPS for o in options(g)]
    + [f"{g}={o}" for g in OPTIONAL_GROUPS for o in options(g)],
)
def test_every_group_option_composes_and_names_one_class(make_cfg, override):
    cfg = make_cfg([override], small_val=False)
    group, _ = override.split("=")
    config_to_save(cfg)  # every interpolation of the run's config resolves
    if group in ("data", "model", "optim", "augment", "trainer"):
        assert "_target_" in cfg[group], f"{override} must map to a class via _target_"


def test_required_options_exist():
    expected = {
        "data": {"cifar10", "fashion_mnist"},
        "model": {"simple_cnn", "cifar10netv2"},
        "optim": {"sgd", "adam", "adamw"},
        "scheduler": {"none", "step", "cosine", "plateau", "onecycle"},
        "augment": {"none", "flip_crop", "flip_affine_cutout", "albumentations"},
        "trainer": {"default", "cpu", "gpu", "mps"},
        "logger": {"tensorboard", "csv"},
        "debug": {"fast", "overfit"},
        "experiment": {"quickstart"},
    }
    for group, names in expected.items():
        assert names <= set(options(group)), group


def test_canonical_call_composes(make_cfg):
    cfg = make_cfg(["model=cifar10netv2", "optim=adamw"])
    assert cfg.model._target_.endswith("CIFAR10Netv2")
    assert cfg.optim._target_ == "torch.optim.AdamW"
    assert cfg.scheduler.scheduler.T_max == cfg.trainer.max_epochs
    assert cfg.trainer.accelerator == "auto"


def test_plateau_scheduler_watches_val_acc_in_max_mode(make_cfg):
    cfg = make_cfg(["scheduler=plateau"])
    assert cfg.scheduler.monitor == "val/acc" and cfg.scheduler.scheduler.mode == "max"


def test_data_dir_comes_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(tmp_path / "somewhere"))
    cfg = OmegaConf.load(CONFIG_DIR / "paths" / "default.yaml")
    cfg = OmegaConf.create({"paths": cfg})
    assert cfg.paths.data_dir == str(tmp_path / "somewhere")
    monkeypatch.delenv("CNNLAB_DATA_DIR")
    assert cfg.paths.data_dir == str(REPO_ROOT / "data")


BAD_VALUES = [
    ("optim.lr=0", "optim.lr"),
    ("optim.lr=-0.1", "optim.lr"),
    ("data.batch_size=0", "data.batch_size"),
    ("trainer.max_epochs=0", "trainer.max_epochs"),
    ("module.label_smoothing=1.5", "module.label_smoothing"),
    ("callbacks.stop_at=1.2", "callbacks.stop_at"),
    ("optim.weight_decay=-1", "optim.weight_decay"),
    ("data.val_size=0", "data.val_size"),
    ("optim.lr=fast", "optim.lr"),
    ("data.val_size=50000", "data.val_size"),  # CIFAR-10's whole training set
    ("data.mean=[0.5]", "data.mean"),  # one value for three channels
    ("data.std=[0.2,0.2,0]", "data.mean / data.std"),
    ("keep_freed_memory=maybe", "keep_freed_memory must be true or false"),
    ("channels_last=1", "channels_last must be true or false"),
]


@pytest.mark.parametrize(("override", "key"), BAD_VALUES)
def test_invalid_values_are_rejected_before_training(make_cfg, override, key):
    cfg = make_cfg([override])
    with pytest.raises(CnnlabError, match=key.replace(".", r"\.")):
        validate_config(cfg)


def test_val_size_as_large_as_the_training_set_is_rejected_before_reading_data(make_cfg, tmp_path):
    cfg = make_cfg(["data=fashion_mnist", "data.val_size=60000"], data_dir=tmp_path / "none")
    with pytest.raises(CnnlabError, match=r"data\.val_size must be between 1 and 59999"):
        train(cfg)  # the data dir does not even exist: the rule needs no file
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained, nothing written


def test_val_size_leaving_no_training_images_on_small_data(make_cfg):
    cfg = make_cfg(["data=fashion_mnist", "data.val_size=240", "debug=fast"])
    with pytest.raises(CnnlabError, match="leaves no training images"):
        train(cfg)


# Values torch only rejects when it builds or first steps the optimizer / scheduler.
BAD_OPTIMIZATION = [
    (["optim=adam", "+optim.betas=[2,3]"], "optim.betas=[2, 3] is refused by torch.optim.Adam"),
    (["optim=adam", "optim.weight_decay=-1"], "optim.weight_decay must be >= 0"),
    (["optim=adamw", "+optim.eps=-1"], "optim.eps=-1 is refused by torch.optim.AdamW"),
    (["optim.nesterov=true", "optim.momentum=0"], "optim.momentum=0 is refused by torch.optim.SGD"),
    (["+optim.foo=1"], "optim.foo=1 is refused by torch.optim.SGD"),
    (["scheduler=step", "scheduler.scheduler.step_size=0"], "scheduler.scheduler.step_size"),
    (["scheduler.scheduler.T_max=0"], "scheduler.scheduler.T_max must be >= 1"),
    (["scheduler=onecycle", "scheduler.scheduler.pct_start=2"], "scheduler.scheduler.pct_start=2"),
    (["scheduler=plateau", "scheduler.scheduler.factor=2"], "scheduler.scheduler.factor=2"),
    (
        ["scheduler.scheduler.eta_min=low"],
        "scheduler.scheduler (torch.optim.lr_scheduler.CosineAnnealingLR) fails on its first",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_OPTIMIZATION)
def test_optimizer_and_scheduler_values_are_one_line_before_any_data_is_read(
    make_cfg, tmp_path, overrides, message
):
    cfg = make_cfg(overrides, data_dir=tmp_path / "no_data_here")
    with pytest.raises(CnnlabError) as err:
        train(cfg)  # fails on the value, not on the missing data
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
