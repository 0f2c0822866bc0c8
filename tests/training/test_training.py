"""Training wiring (fast_dev_run), overfitting, determinism, logs and the real-data bar."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from cnnlab.training.build import resolve_precision
from cnnlab.training.module import SCALARS
from cnnlab.training.task import build_run, train

MODELS = ["simple_cnn", "cifar10netv2"]
DATASETS = ["cifar10", "fashion_mnist"]
try:
    import albumentations  # noqa: F401

    HAS_ALBUMENTATIONS = True
except ImportError:
    HAS_ALBUMENTATIONS = False
AUGMENTS = [
    "none",
    "flip_crop",
    "flip_affine_cutout",
    pytest.param(
        "albumentations",
        marks=pytest.mark.skipif(not HAS_ALBUMENTATIONS, reason="albumentations extra absent"),
    ),
]
QUIET = ["callbacks.rich_progress_bar=null"]


@pytest.mark.parametrize("augment", AUGMENTS)
@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_fast_dev_run_every_model_dataset_augment(make_cfg, model, data, augment):
    cfg = make_cfg([f"model={model}", f"data={data}", f"augment={augment}", "debug=fast", *QUIET])
    metrics = train(cfg)
    assert metrics["global_step"] == 1
    assert 0.0 <= metrics["test/acc"] <= 1.0 and metrics["test/loss"] > 0
    assert set(metrics["per_class"]) == set(build_run(cfg)[0].classes)


def test_overfit_one_batch_drives_training_loss_near_zero(make_cfg):
    cfg = make_cfg(
        [
            "debug=overfit",
            "model=simple_cnn",
            "optim=adam",
            "data=fashion_mnist",
            "data.batch_size=64",
            *QUIET,
        ]
    )
    datamodule, module, trainer = build_run(cfg)
    seen: list[torch.Tensor] = []
    trainer.callbacks.append(RecordTrainBatches(seen, epochs=3))
    trainer.fit(module, datamodule=datamodule)
    assert float(trainer.callback_metrics["train/loss"]) < 0.05
    # One fixed batch: the same images in every epoch, not a reshuffled one.
    assert len(seen) == 3 and all(torch.equal(seen[0], later) for later in seen[1:])


class RecordTrainBatches(Callback):
    """Keeps the first training batch (as the model sees it) of the first `epochs` epochs."""

    def __init__(self, seen: list[torch.Tensor], epochs: int) -> None:
        self.seen, self.epochs = seen, epochs

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0 and trainer.current_epoch < self.epochs:
            self.seen.append(batch[0].clone())


def test_same_seed_same_metrics_on_cpu(make_cfg, tmp_path):
    overrides = ["data=fashion_mnist", "trainer.max_epochs=2", "trainer=cpu", *QUIET]
    first = train(make_cfg(overrides, output_dir=tmp_path / "a"))
    second = train(make_cfg(overrides, output_dir=tmp_path / "b"))
    for key in ("test/acc", "test/loss", "test/f1", "best_val_acc"):
        assert first[key] == second[key], key
    third = train(make_cfg([*overrides, "seed=7"], output_dir=tmp_path / "c"))
    assert third["test/loss"] != first["test/loss"]


def test_stop_at_target_ends_training_early(make_cfg):
    # The synthetic classes are learnable: val/acc climbs past 0.7 within a few epochs.
    overrides = ["data=fashion_mnist", "trainer.max_epochs=6", "optim=adam", "optim.lr=0.003"]
    overrides += ["data.batch_size=16", *QUIET]
    full = train(make_cfg(overrides))
    assert full["epochs"] == 6 and full["best_val_acc"] > 0.7
    stopped = train(make_cfg([*overrides, "callbacks.stop_at=0.7"]))
    assert stopped["epochs"] < 6 and stopped["best_val_acc"] > 0.7


def test_metrics_json_checkpoints_and_tensorboard_events(make_cfg, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = ["data=cifar10", "trainer.max_epochs=2", "trainer.log_every_n_steps=1"]
    cfg = make_cfg([*overrides, "scheduler=onecycle", *QUIET])
    train(cfg)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "test/acc",
        "test/precision",
        "test/recall",
        "test/f1",
        "test/loss",
        "best_val_acc",
        "epochs",
        "train_seconds",
        "params",
    ):
        assert key in metrics, key
    assert metrics["epochs"] == 2 and metrics["params"] > 0
    assert set(
        metrics["per_class"]["c0"]
        if "c0" in metrics["per_class"]
        else metrics["per_class"]["airplane"]
    ) == {"precision", "recall", "f1"}
    assert (run / "checkpoints" / "last.ckpt").is_file()
    checkpoint = torch.load(
        run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    assert checkpoint["cnnlab_config"]["model"]["_target_"] == cfg.model._target_
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert set(SCALARS) <= scalars
    assert "test_per_class/f1/airplane" in scalars
    assert len(events.Scalars("val/acc")) == 2


def test_precision_fits_the_hardware(monkeypatch):
    import cnnlab.training.build as build

    monkeypatch.delenv(build.CPU_BF16_ENV, raising=False)  # detection, not the override
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(build, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", "auto") == "32-true"
    monkeypatch.setattr(build, "cpu_has_bf16", lambda: True)
    assert resolve_precision("cpu", "auto") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", "auto") == "16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("gpu", "auto") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_precision("auto", "auto") == "32-true"
    assert resolve_precision("auto", "16-mixed") == "16-mixed"  # explicit choice wins


BF16_CPU_FLAGS = {"avx2", "avx512f", "avx512_bf16"}


@pytest.mark.parametrize(
    ("capability", "limits", "native"),
    [
        ("AVX512", {}, True),
        ("AVX512", {"ATEN_CPU_CAPABILITY": "AVX2"}, True),  # torch ignores it: still AVX512
        ("AVX2", {"ATEN_CPU_CAPABILITY": "avx2"}, False),
        ("AVX512", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
        ("AVX512", {"ONEDNN_MAX_CPU_ISA": "avx2"}, False),
        ("AVX512", {"DNNL_MAX_CPU_ISA": "avx512_core"}, False),
        ("AVX512", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, True),
        ("AVX512", {"ONEDNN_MAX_CPU_ISA": "foo"}, True),  # oneDNN ignores it too
        ("AVX2", {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
    ],
)
def test_isa_limits_turn_native_bf16_off(monkeypatch, capability, limits, native):
    """A bf16 CPU told to run AVX2 kernels emulates bf16 (~10x slower): auto must pick fp32.
    A value torch or oneDNN ignores changes nothing, so it must not change `auto` either."""
    import cnnlab.machine as machine
    import cnnlab.training.build as build

    for name in machine.ISA_LIMIT_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(build.CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(machine, "cpu_flags", lambda: BF16_CPU_FLAGS)
    assert machine.cpu_has_bf16() is native
    assert resolve_precision("cpu", "auto") == ("bf16-mixed" if native else "32-true")
    kind = machine.cpu_kind(BF16_CPU_FLAGS)
    assert kind.startswith("AVX-512 with native bf16")
    assert ("limited by" in kind) == bool(limits)


@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize(("value", "expected"), [("1", "bf16-mixed"), ("0", "32-true")])
def test_cpu_bf16_override_beats_detection_on_the_cpu_only(monkeypatch, native, value, expected):
    import cnnlab.training.build as build

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(build, "cpu_has_bf16", lambda: native)
    monkeypatch.setenv(build.CPU_BF16_ENV, value)
    assert resolve_precision("auto", "auto") == expected
    assert resolve_precision("cpu", "auto") == expected
    assert resolve_precision("cpu", "32-true") == "32-true"  # explicit choice wins
    monkeypatch.setenv(build.CPU_BF16_ENV, "")  # empty: detect
    assert resolve_precision("cpu", "auto") == ("bf16-mixed" if native else "32-true")
    monkeypatch.setenv(build.CPU_BF16_ENV, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the GPU decides on a GPU
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", "auto") == "16-mixed"


@pytest.mark.parametrize("value", ["yes", "2", "true"])
def test_bad_cpu_bf16_override_is_one_error_naming_the_variable(monkeypatch, value):
    from cnnlab.errors import CnnlabError
    from cnnlab.training.build import CPU_BF16_ENV

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv(CPU_BF16_ENV, value)
    with pytest.raises(CnnlabError) as error:
        resolve_precision("cpu", "auto")
    message = str(error.value)
    assert "\n" not in message
    assert f"CNNLAB_CPU_BF16='{value}'" in message and "1" in message and "0" in message
    assert resolve_precision("cpu", "32-true") == "32-true"  # only `auto` reads it


@pytest.mark.real_data
@pytest.mark.slow
def test_fashion_mnist_learns_to_85_percent_in_one_short_epoch(real_data_dir, tmp_path):
    from cnnlab.config import compose_run_config

    cfg = compose_run_config(
        ["experiment=quickstart", "trainer.max_epochs=1", *QUIET], tmp_path / "run", real_data_dir
    )
    metrics = train(cfg)
    assert metrics["epochs"] == 1
    assert metrics["test/acc"] >= 0.85, metrics
    assert metrics["test/f1"] >= 0.84
