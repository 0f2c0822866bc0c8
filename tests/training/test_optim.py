"""optim=muon: torch's Muon update on weight matrices (conv filters included), torch's SGD or
AdamW on the rest, as one optimizer that checkpoints and resumes exactly."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from cnnlab.config import compose_run_config
from cnnlab.recipes.airbench.net import AirbenchNet
from cnnlab.training.optim import MuonWithAuxiliary, muon, orthogonalize
from cnnlab.training.task import build_run, train
from tests.helpers.train_cli import QUIET


def steps(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], n: int = 3) -> None:
    """n steps on fixed pseudo-random gradients."""
    g = torch.Generator().manual_seed(1)
    for _ in range(n):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        optimizer.step()


def test_muon_step_on_a_matrix_is_torchs_muon_step() -> None:
    torch.manual_seed(0)
    ours_w, torchs_w = nn.Parameter(torch.randn(8, 20)), nn.Parameter(torch.randn(8, 20))
    with torch.no_grad():
        torchs_w.copy_(ours_w)
    bias = nn.Parameter(torch.zeros(8))  # the auxiliary side, so the matrix is no output layer
    ours = muon([ours_w, bias], lr=0.05, momentum=0.9, weight_decay=0.1, muon_output_layer=True)
    reference = torch.optim.Muon([torchs_w], lr=0.05, momentum=0.9, weight_decay=0.1)
    steps(ours, [ours_w])
    steps(reference, [torchs_w])
    assert torch.equal(ours_w, torchs_w)
    tall = torch.randn(30, 6)  # more rows than columns: orthogonalized through the transpose
    product = orthogonalize(tall, steps=5).float()
    assert product.shape == (30, 6)
    singular = torch.linalg.svdvals(product)
    assert singular.min() > 0.5 and singular.max() < 1.5  # ~semi-orthogonal (NS in bf16)


def test_conv_filters_step_as_out_by_in_k_k_matrices() -> None:
    torch.manual_seed(0)
    conv = nn.Parameter(torch.randn(6, 4, 3, 3))
    flat = nn.Parameter(conv.detach().reshape(6, 36).clone())
    head = nn.Parameter(torch.randn(10, 6))
    ours = muon([conv, head], lr=0.1, momentum=0.6)
    reference = torch.optim.Muon([flat], lr=0.1, momentum=0.6, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        grad = torch.randn(6, 4, 3, 3, generator=g)
        conv.grad, flat.grad = (
            grad.contiguous(memory_format=torch.channels_last),
            grad.reshape(6, 36),
        )
        head.grad = torch.zeros_like(head)
        ours.step()
        reference.step()
    assert torch.equal(conv.detach().reshape(6, 36), flat.detach())


def test_parameters_split_between_muon_and_the_auxiliary_optimizer() -> None:
    net = AirbenchNet(3, 10, 32, widths=(8, 16, 16), whiten_bias_lr_scale=64.0)
    opt = muon(net.parameters(), lr=0.24, aux_lr=1.5, aux_weight_decay=1e-3)
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    for conv in (m for m in net.modules() if isinstance(m, nn.Conv2d)):
        assert by_param[id(conv.weight)]["algorithm"] == "muon"
    head = by_param[id(net.head.weight)]
    assert head["algorithm"] == "sgd" and head["lr"] == 1.5 and head["weight_decay"] == 1e-3
    for bias in (net.stem.bias, net.blocks[0].norms[0].bias):
        group = by_param[id(bias)]
        assert group["algorithm"] == "sgd" and group["lr"] == 1.5 * 64
        assert group["weight_decay"] == pytest.approx(1e-3 / 64)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))
    tagged = nn.Linear(4, 4)
    tagged.weight.muon = True  # an output layer can be put under Muon by its tag
    assert muon(tagged.parameters()).param_groups[0]["algorithm"] == "muon"
    with pytest.raises(ValueError, match=r"optim\.aux"):
        muon(net.parameters(), aux="lion")


@pytest.mark.parametrize("aux", ["sgd", "adamw"])
def test_auxiliary_groups_step_like_torchs_optimizers(aux: str) -> None:
    torch.manual_seed(0)
    bias = nn.Parameter(torch.randn(5))
    twin = nn.Parameter(bias.detach().clone())
    ours = muon([bias], aux=aux, aux_lr=0.1, aux_momentum=0.8, aux_weight_decay=0.01)
    if aux == "sgd":
        reference = torch.optim.SGD([twin], lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01)
    else:
        reference = torch.optim.AdamW([twin], lr=0.1, weight_decay=0.01)
    steps(ours, [bias])
    steps(reference, [twin])
    assert torch.equal(bias, twin)


def test_state_dict_round_trip_continues_exactly() -> None:
    """Stepping on after load_state_dict into a fresh optimizer equals never stopping."""
    net = AirbenchNet(3, 10, 32, widths=(8, 16, 16))
    twin = AirbenchNet(3, 10, 32, widths=(8, 16, 16))  # not deepcopy: it drops lr_scale tags
    kwargs = {"lr": 0.2, "momentum": 0.6, "normalize_weights": True, "ns_steps": 3}
    params = [p for p in net.parameters() if p.requires_grad]
    opt = muon(net.parameters(), **kwargs)
    steps(opt, params, 2)
    with torch.no_grad():
        for a, b in zip(twin.parameters(), net.parameters(), strict=True):
            a.copy_(b)
    resumed = muon(twin.parameters(), **kwargs)
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
    steps(opt, params, 2)
    steps(resumed, [p for p in twin.parameters() if p.requires_grad], 2)
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    assert isinstance(resumed, MuonWithAuxiliary)


# 180 training images / batch 16 = 11 steps per epoch (drop_last), 22 in all; last.ckpt every
# 5 steps. Exactness needs fp32 and a fixed thread count.
RESUME_ARGS = [
    "experiment=airbench94_muon",
    "model.widths=[8,16,16]",
    "data.val_size=20",
    "data.batch_size=16",
    "data.eval_batch_size=50",
    "trainer.max_epochs=2",
    "trainer.precision=32-true",
    "callbacks.save_every_n_steps=5",
    "callbacks.freeze_whiten_bias.epochs=1",
    *QUIET,
]
# fmnist_95_cpu adds Lookahead, whose weight average is state too: 220 Fashion-MNIST images /
# 16 = 13 steps per epoch, 26 in all; the average starts at once instead of after 3 epochs.
LOOKAHEAD_RESUME_ARGS = [
    "experiment=fmnist_95_cpu",
    *RESUME_ARGS[1:],
    "callbacks.lookahead.start_epoch=0",
]
# args, the step the run dies after, the step last.ckpt then holds, steps in all
RESUME_CASES = {
    "airbench94_muon": (RESUME_ARGS, 13, 11, 22),
    "fmnist_95_cpu_lookahead": (LOOKAHEAD_RESUME_ARGS, 14, 13, 26),
}


class Crash(RuntimeError):
    pass


class CrashAtStep(Callback):
    """A kill -9 stand-in: the run dies after optimizer step `step`, saving nothing more."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object, **kwargs: object) -> None:
        if trainer.global_step == self.step:
            raise Crash


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_muon_run_killed_and_resumed_equals_an_uninterrupted_run(
    tmp_path: Path, synthetic_data_dir: Path, case: str
) -> None:
    args, crash_step, saved_step, total_steps = RESUME_CASES[case]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = tmp_path / "reference"
        train(compose_run_config(args, reference, synthetic_data_dir))

        interrupted = tmp_path / "interrupted"
        cfg = compose_run_config(args, interrupted, synthetic_data_dir)
        L.seed_everything(cfg.seed, workers=True, verbose=False)  # as train() does
        datamodule, module, trainer = build_run(cfg)
        trainer.callbacks.append(CrashAtStep(crash_step))  # mid-epoch 1
        with pytest.raises(Crash):
            trainer.fit(module, datamodule=datamodule)
        saved = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)
        assert saved["global_step"] == saved_step  # epoch 0 as it ended
        train(compose_run_config([*args, "resume=auto"], interrupted, synthetic_data_dir))
    finally:
        torch.set_num_threads(threads)

    expected = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)
    assert got["global_step"] == expected["global_step"] == total_steps
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), f"{name} differs after resume"
    (state_a,), (state_b,) = expected["optimizer_states"], got["optimizer_states"]
    assert [g["algorithm"] for g in state_a["param_groups"]] == ["muon", "sgd", "sgd"]
    assert state_a["param_groups"] == state_b["param_groups"]
    for key, entry in state_a["state"].items():
        for name, tensor in entry.items():
            assert torch.equal(tensor, state_b["state"][key][name]), f"state {key}.{name}"
    averages = {k: v for k, v in expected["callbacks"].items() if k.startswith("Lookahead")}
    assert bool(averages) == (case == "fmnist_95_cpu_lookahead")
    for key, state in averages.items():
        assert state["average"], "the lookahead average was not saved"
        for name, tensor in state["average"].items():
            assert torch.equal(tensor, got["callbacks"][key]["average"][name]), f"average {name}"
