"""airbench (Keller Jordan, arXiv 2404.00498) inside the suite: every trick in one table.

`experiment=airbench94` (and `airbench96`, and the CPU recipes built on them) and
`experiment=airbench94_muon` turn on the rows that name them (`recipes`); each row's
`ablate` override turns one off, so an ablation study is a multirun over these overrides.
The code of each trick lives beside this file: the net (`net.py`), scaled SGD (`optim.py`),
the warm-up/decay schedule (`schedule.py`) and the Lookahead / freeze callbacks
(`callbacks.py`); Muon is the suite's `optim=muon` (`cnnlab.training.optim`); alternating
flip and translate are options of the suite's batched augmentation
(`cnnlab.augment.FlipCrop`), test-time augmentation one of the task module (`module.tta`).
"""

from __future__ import annotations

from typing import NamedTuple

BOTH = ("airbench94", "airbench94_muon")
MUON = ("airbench94_muon", "cifar10_94_cpu", "cifar10_85_cpu", "fmnist_93_cpu", "fmnist_95_cpu")


class Trick(NamedTuple):
    switch: str  # the config key that carries it
    ablate: str  # the override that turns it off
    why: str
    recipes: tuple[str, ...] = BOTH  # the experiments that turn it on


TRICKS: dict[str, Trick] = {
    "whitening": Trick(
        "model.whiten",
        "model.whiten=false",
        "first conv = frozen whitening filters of 2x2 training patches: decorrelated inputs",
    ),
    "dirac_init": Trick(
        "model.dirac_init",
        "model.dirac_init=false",
        "3x3 convs start as identity: an implicit residual in a plain stack",
    ),
    "batchnorm_no_scale": Trick(
        "model.batchnorm_weight",
        "model.batchnorm_weight=true",
        "BatchNorm scale frozen at 1 (only the shift trains), running-average weight 0.6",
    ),
    "bias_lr_64x": Trick(
        "model.bias_lr_scale",
        "model.bias_lr_scale=1",
        "BatchNorm shifts get 64x the learning rate (1/64 the weight decay)",
    ),
    "gelu": Trick("model.activation", "model.activation=relu", "GELU after every conv"),
    "logit_scale": Trick(
        "model.logit_scale", "model.logit_scale=1", "logits / 9: a temperature for the loss"
    ),
    "nesterov_sgd": Trick(
        "optim",
        "optim=sgd",
        "Nesterov SGD, momentum 0.85, decoupled weight decay per lr_scale group",
        ("airbench94",),
    ),
    "label_smoothing": Trick(
        "module.label_smoothing", "module.label_smoothing=0", "label smoothing 0.2"
    ),
    "warmup_decay": Trick(
        "scheduler",
        "scheduler=onecycle",
        "linear warm-up over 23% of the steps, then linear decay to 7%",
        ("airbench94",),
    ),
    "alternating_flip": Trick(
        "augment.flip",
        "augment.flip=random",
        "each image mirrored on alternate epochs instead of at random",
    ),
    "translate": Trick(
        "augment.padding", "augment.padding=0", "random translation by up to 2 px (reflect)"
    ),
    "lookahead": Trick(
        "callbacks.lookahead",
        "callbacks.lookahead=null",
        "every 5 steps an EMA of the weights is copied back into the net",
        ("airbench94", "fmnist_95_cpu"),
    ),
    "freeze_whiten_bias": Trick(
        "callbacks.freeze_whiten_bias",
        "callbacks.freeze_whiten_bias=null",
        "the whitening conv's bias stops training after 3 epochs",
    ),
    "cpu_whiten_bias_frozen": Trick(
        "callbacks.freeze_whiten_bias.epochs",
        "callbacks.freeze_whiten_bias.epochs=${trainer.max_epochs}",
        "the whitening bias is never trained: backward stops at the first 3x3 conv (CPU time)",
        ("cifar10_85_cpu",),
    ),
    "progressive_resize": Trick(
        "data.train_sizes",
        "data.train_sizes=[]",
        "early epochs train on shrunk images (CIFAR-10: 20, 24, then 32 px; Fashion-MNIST: 24, "
        "then 28): an extra epoch, or less time, for the pixels they skip",
        ("cifar10_85_cpu", "fmnist_93_cpu"),
    ),
    "tta": Trick(
        "module.tta",
        "module.tta=none",
        "test-time augmentation: mirror + 1 px translations, 6 views averaged",
    ),
    "muon": Trick(
        "optim.use_muon",
        "optim.use_muon=false",
        "Muon on the conv filters (orthogonalised momentum): 94% in 8 epochs instead of 10",
        MUON,
    ),
    "weight_normalization": Trick(
        "optim.normalize_weights",
        "optim.normalize_weights=false",
        "each filter bank rescaled to norm sqrt(out channels) before its Muon step",
        MUON,
    ),
}
