"""The zoo through the real train task, and the staged experiment configs.

Every model x dataset and every experiment x dataset runs one `fast_dev_run` step through
`cnnlab.training.task.train` on the tiny synthetic data (batches shrunk so each step is quick);
the experiment recipes are also checked value by value against their documented recipe.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import hydra.utils
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping
from omegaconf import OmegaConf
from torch import nn

from cnnlab.models.cifar10netv2 import CIFAR10Netv2
from cnnlab.models.simple_cnn import SimpleCNN
from cnnlab.paths import CONFIG_DIR
from cnnlab.reporting.inspection import count_params, receptive_field
from cnnlab.training.build import build_list
from cnnlab.training.task import train

MODELS = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))
# Image experiments (every one must also run with data=fashion_mnist); the tabular ones
# (tabular*, case_study_*) are exercised with their own data in tests/tabular/.
EXPERIMENTS = sorted(
    p.stem
    for p in (CONFIG_DIR / "experiment").glob("*.yaml")
    if p.stem != "quickstart" and not p.stem.startswith(("case_study_", "tabular"))
)
DATASETS = ["cifar10", "fashion_mnist"]
# Small batches keep one step of ResNet-18 / AlexNet well under a second on 2 CPU cores.
FAST = [
    "debug=fast",
    "data.batch_size=8",
    "data.eval_batch_size=8",
    "callbacks.rich_progress_bar=null",
]
# The family option at its smallest depth: depth 18 is already the resnet18 option's run.
MODEL_OVERRIDES = {"resnet": ["model.depth=10"]}


def test_registry_is_complete() -> None:
    assert set(MODELS) >= {
        "simple_cnn",
        "cifar10netv2",
        "alexnet",
        "blocknet",
        "resnet18",
        "resnet",
    }
    assert set(EXPERIMENTS) >= {
        "simple_cnn_sgd_baseline",
        "blocknet_flip_crop",
        "blocknet_bn_adamw",
        "cifar10netv2_to_85",
        "alexnet_plain",
        "resnet18",
    }


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_trains_one_step(make_cfg, model: str, data: str) -> None:
    cfg = make_cfg([f"model={model}", f"data={data}", *FAST, *MODEL_OVERRIDES.get(model, [])])
    metrics = train(cfg)
    expected = hydra.utils.instantiate(
        cfg.model,
        in_channels=3 if data == "cifar10" else 1,
        num_classes=10,
        image_size=32 if data == "cifar10" else 28,
    )
    assert metrics["params"] == count_params(expected)
    assert metrics["global_step"] == 1
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert math.isfinite(metrics["test/loss"])
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()  # fast_dev_run writes none


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_one_step(make_cfg, experiment: str, data: str) -> None:
    cfg = make_cfg([f"experiment={experiment}", f"data={data}", *FAST])
    assert cfg.task_name == experiment
    metrics = train(cfg)
    assert metrics["global_step"] == 1
    assert math.isfinite(metrics["test/loss"])


# (experiment, {dotted key: the value its recipe documents})
RECIPES = {
    "simple_cnn_sgd_baseline": {
        "model._target_": "cnnlab.models.simple_cnn.SimpleCNN",
        "optim._target_": "torch.optim.SGD",
        "optim.lr": 0.01,
        "optim.momentum": 0.9,
        "scheduler.scheduler": None,
        "augment._target_": "cnnlab.augment.NoAugment",
        "data.batch_size": 32,
        "trainer.max_epochs": 10,
    },
    "blocknet_flip_crop": {
        "model._target_": "cnnlab.models.blocknet.BlockNet",
        "model.num_blocks": 6,
        "augment._target_": "cnnlab.augment.FlipCrop",
        "optim._target_": "torch.optim.SGD",
        "scheduler.scheduler._target_": "torch.optim.lr_scheduler.StepLR",
        "data.batch_size": 64,
        "trainer.max_epochs": 20,
    },
    "blocknet_bn_adamw": {
        "model._target_": "cnnlab.models.blocknet.BlockNet",
        "model.batch_norm": True,
        "model.dropout": 0.3,
        "augment._target_": "cnnlab.augment.FlipAffineCutout",
        "optim._target_": "torch.optim.AdamW",
        "scheduler.scheduler._target_": "torch.optim.lr_scheduler.CosineAnnealingLR",
        "scheduler.scheduler.T_max": 200,
        "trainer.max_epochs": 200,
    },
    "cifar10netv2_to_85": {
        "model._target_": "cnnlab.models.cifar10netv2.CIFAR10Netv2",
        "augment._target_": "cnnlab.augment.FlipAffineCutout",
        "optim._target_": "torch.optim.Adam",
        "optim.lr": 1e-3,
        "optim.weight_decay": 1e-4,
        "scheduler.scheduler._target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
        "scheduler.scheduler.mode": "max",
        "scheduler.scheduler.factor": 0.5,
        "scheduler.scheduler.patience": 2,
        "scheduler.scheduler.min_lr": 1e-6,
        "scheduler.monitor": "val/acc",
        "data.batch_size": 128,
        "trainer.max_epochs": 50,
        "callbacks.stop_at": 0.85,
    },
    "alexnet_plain": {
        "model._target_": "cnnlab.models.alexnet.AlexNet",
        "model.batch_norm": False,
        "optim._target_": "torch.optim.Adam",
        "optim.lr": 1e-4,
        "augment._target_": "cnnlab.augment.NoAugment",
        "scheduler.scheduler": None,
    },
    "airbench94_muon": {
        "model._target_": "cnnlab.recipes.airbench.net.AirbenchNet",
        "model.widths": [64, 256, 256],
        "model.whiten_bias_lr_scale": 64.0,
        "optim._target_": "cnnlab.training.optim.muon",
        "optim.lr": 0.24,
        "optim.momentum": 0.6,
        "optim.ns_steps": 3,
        "optim.normalize_weights": True,
        "optim.aux": "sgd",
        "optim.aux_momentum": 0.85,
        "scheduler.scheduler.start": 1.0,
        "scheduler.scheduler.end": 0.0,
        "data.batch_size": 2000,
        "module.label_smoothing": 0.2,
        "module.tta": "flip_translate",
        "trainer.max_epochs": 8,
        "callbacks.lookahead": None,
        "callbacks.freeze_whiten_bias.epochs": 3,
    },
    "cifar10_94_cpu": {
        "model._target_": "cnnlab.recipes.airbench.net.AirbenchNet",
        "model.widths": [64, 256, 256],
        "optim._target_": "cnnlab.training.optim.muon",
        "optim.lr": 0.24,
        "optim.aux_lr": 0.828,
        "data.batch_size": 1000,
        "module.tta": "flip_translate",
        "trainer.max_epochs": 10,
        "trainer.check_val_every_n_epoch": 10,
        "callbacks.lookahead": None,
        "callbacks.freeze_whiten_bias.epochs": 3,
    },
    "cifar10_85_cpu": {
        "model._target_": "cnnlab.recipes.airbench.net.AirbenchNet",
        "model.widths": [16, 64, 192],
        "optim._target_": "cnnlab.training.optim.muon",
        "optim.lr": 0.24,
        "optim.aux_lr": 0.414,
        "data.batch_size": 500,
        "data.train_sizes": [20, 24, 0],
        "module.tta": "flip_translate",
        "trainer.max_epochs": 3,
        "callbacks.lookahead": None,
        "callbacks.freeze_whiten_bias.epochs": 0,
    },
    "fmnist_93_cpu": {
        "data._target_": "cnnlab.data.fashion_mnist.FashionMNISTDataModule",
        "model._target_": "cnnlab.recipes.airbench.net.AirbenchNet",
        "model.widths": [32, 64, 128],
        "optim._target_": "cnnlab.training.optim.muon",
        "optim.aux_lr": 0.828,
        "data.batch_size": 1000,
        "data.train_sizes": [24, 0],
        "module.tta": "flip_translate",
        "trainer.max_epochs": 4,
    },
    "fmnist_95_cpu": {
        "data._target_": "cnnlab.data.fashion_mnist.FashionMNISTDataModule",
        "model._target_": "cnnlab.recipes.airbench.net.AirbenchNet",
        "model.widths": [64, 256, 384],
        "optim._target_": "cnnlab.training.optim.muon",
        "optim.aux_lr": 0.828,
        "data.batch_size": 1000,
        "data.train_sizes": [],
        "module.tta": "flip_translate",
        "trainer.max_epochs": 10,
        "trainer.check_val_every_n_epoch": 10,
        "callbacks.lookahead._target_": "cnnlab.recipes.airbench.callbacks.Lookahead",
        "callbacks.lookahead.start_epoch": 3,
    },
    "resnet18": {
        "model._target_": "cnnlab.models.resnet.ResNet",
        "model.depth": 18,
        "optim._target_": "torch.optim.SGD",
        "optim.lr": 0.1,
        "optim.momentum": 0.9,
        "optim.weight_decay": 5e-4,
        "scheduler.scheduler._target_": "torch.optim.lr_scheduler.CosineAnnealingLR",
        "augment._target_": "cnnlab.augment.FlipCrop",
        "data.batch_size": 128,
    },
}


@pytest.mark.parametrize("experiment", sorted(RECIPES))
def test_experiment_recipes(make_cfg, experiment: str) -> None:
    cfg = make_cfg([f"experiment={experiment}"])
    cifar10 = "cnnlab.data.cifar10.CIFAR10DataModule"  # the default unless the recipe names one
    assert cfg.data._target_ == RECIPES[experiment].get("data._target_", cifar10)
    for key, value in RECIPES[experiment].items():
        assert OmegaConf.select(cfg, key) == value, f"{experiment}: {key}"


def test_cifar10netv2_to_85_stops_at_85_percent_only(make_cfg) -> None:
    """The stop is EarlyStopping's threshold on val/acc; patience never stops it earlier."""
    cfg = make_cfg(["experiment=cifar10netv2_to_85"])
    (stopper,) = [c for c in build_list(cfg.callbacks, "callbacks") if isinstance(c, EarlyStopping)]
    assert stopper.monitor == "val/acc" and stopper.mode == "max"
    assert stopper.stopping_threshold == 0.85
    assert stopper.patience >= cfg.trainer.max_epochs


# ----------------------------------------------------------------------------- CIFAR10Netv2


def test_cifar10netv2_structure() -> None:
    model = CIFAR10Netv2(in_channels=3, num_classes=10, image_size=32)
    assert count_params(model) == 181_942
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert any(max(c.dilation) > 1 for c in convs), "no dilated conv"
    # depthwise-separable: a depthwise conv (one filter per channel) fed straight into a 1x1
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    pairs = list(itertools.pairwise(convs))
    assert any(
        a.groups == a.in_channels == a.out_channels > 1 and b.kernel_size == (1, 1)
        for a, b in pairs
    ), f"no depthwise-separable conv among {names}"


def test_receptive_fields_by_hand() -> None:
    # SimpleCNN: 5x5 -> 5; pool 2 -> 6, jump 2; 5x5 -> 6 + 4 * 2 = 14; pool 2 -> 16.
    assert receptive_field(SimpleCNN(in_channels=3, num_classes=10, image_size=32)) == 16
    # CIFAR10Netv2, rf += (k - 1) * dilation * jump, then jump *= stride:
    #   block 1, three 3x3 @ jump 1:               1 + 3 * 2      = 7
    #   transition 1: 1x1, then 3x3 s2 @ 1:         7 + 2          = 9,  jump 2
    #   block 2, three 3x3 @ 2:                     9 + 3 * 4      = 21
    #   transition 2: 1x1, then 3x3 s2 @ 2:         21 + 4         = 25, jump 4
    #   block 3: 3x3 @ 4 -> 33; 3x3 dilation 2 @ 4 -> 33 + 16 = 49; depthwise 3x3 @ 4 -> 57
    #            (its pointwise 1x1 adds nothing)
    #   transition 3: 1x1, then 3x3 s2 @ 4:         57 + 8         = 65, jump 8
    #   block 4: 3x3 @ 8 -> 81; three 1x1 add nothing                = 81 (>= 44)
    model = CIFAR10Netv2(in_channels=3, num_classes=10, image_size=32)
    assert receptive_field(model) == 81
    # geometry only: the same on Fashion-MNIST's 28x28
    assert receptive_field(CIFAR10Netv2(in_channels=1, num_classes=10, image_size=28)) == 81


def test_cifar10netv2_on_both_inputs() -> None:
    for c, size in ((3, 32), (1, 28)):
        model = CIFAR10Netv2(in_channels=c, num_classes=7, image_size=size)
        assert model(torch.randn(2, c, size, size)).shape == (2, 7)
