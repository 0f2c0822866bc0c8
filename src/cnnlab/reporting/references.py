"""Published test accuracies that cnnlab results are placed beside in `cnnlab.verbs.report`.

Only figures read in their source are listed, each with that source (papers: He et al.,
"Deep Residual Learning for Image Recognition"; Dosovitskiy et al., "An Image is Worth 16x16
Words"; the CIFAR-10 speed records as their repositories' READMEs list them: KellerJordan/
cifar10-airbench, whose current records postdate its paper (arXiv 2404.00498), and
hiverge/cifar10-speedrun; Fashion-MNIST: the benchmark table of Zalando's README, results
submitted by users, not re-run by Zalando). They come from very different budgets (minutes on a
CPU here; GPU-days and, for ViT, 300M extra pre-training images there): they place a result,
they are not a like-for-like comparison.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    dataset: str  # a DataModule `name`: cifar10 | fashion_mnist
    method: str
    accuracy: float  # test accuracy, percent
    note: str
    source: str
    url: str


RESNET_PAPER = "He et al., CVPR 2016 (ResNet), Table 6"
RESNET_URL = "https://arxiv.org/abs/1512.03385"
AIRBENCH = "cifar10-airbench README"
AIRBENCH_URL = "https://github.com/KellerJordan/cifar10-airbench"
HIVERGE = "hiverge cifar10-speedrun README"
HIVERGE_URL = "https://github.com/hiverge/cifar10-speedrun"
ZALANDO = "Zalando fashion-mnist README, benchmark"
ZALANDO_URL = "https://github.com/zalandoresearch/fashion-mnist#benchmark"

REFERENCES: tuple[Reference, ...] = (
    Reference(
        "cifar10", "ViT-H/14 (JFT-300M pre-training)", 99.50,
        "state of the art class; fine-tuned after pre-training on 300M extra images",
        "Dosovitskiy et al., ICLR 2021 (ViT), Table 2",
        "https://arxiv.org/abs/2010.11929",
    ),
    Reference(
        "cifar10", "airbench96_faster", 96.00,
        "27.3 s on one A100; trains on a subset chosen by a small proxy model", AIRBENCH,
        AIRBENCH_URL,
    ),
    Reference(
        "cifar10", "airbench96", 96.03,
        "34.7 s on one A100 (46.3 s in the paper); experiment=airbench96 follows it",
        AIRBENCH, AIRBENCH_URL,
    ),
    Reference(
        "cifar10", "ResNet-18, standard training", 96.0, "about 7 min on one A100",
        AIRBENCH, AIRBENCH_URL,
    ),
    Reference(
        "cifar10", "cifar10-speedrun (Hiverge)", 94.01,
        "2.015 s on one A100: airbench94_muon with a batched Muon step and selective TTA",
        HIVERGE, HIVERGE_URL,
    ),
    Reference(
        "cifar10", "airbench94_muon", 94.01, "2.59 s on one A100 (Muon optimizer)",
        AIRBENCH, AIRBENCH_URL,
    ),
    Reference(
        "cifar10", "airbench94", 94.01,
        "3.83 s on one A100 (3.09 s compiled); experiment=airbench94 follows it",
        AIRBENCH, AIRBENCH_URL,
    ),
    Reference(
        "cifar10", "ResNet-110", 93.57, "6.43% error, best of 5 runs (mean 6.61%); 1.7M params",
        RESNET_PAPER, RESNET_URL,
    ),
    Reference("cifar10", "ResNet-56", 93.03, "6.97% error; 0.85M params", RESNET_PAPER, RESNET_URL),
    Reference("cifar10", "ResNet-20", 91.25, "8.75% error; 0.27M params", RESNET_PAPER, RESNET_URL),
    Reference(
        "fashion_mnist", "WRN40-4", 96.7, "8.9M params; random crops and flips", ZALANDO,
        ZALANDO_URL,
    ),
    Reference(
        "fashion_mnist", "WRN-28-10 + Random Erasing", 96.3, "random crops and flips",
        ZALANDO, ZALANDO_URL,
    ),
    Reference(
        "fashion_mnist", "ResNet18", 94.9, "flips, translation and rotation",
        ZALANDO, ZALANDO_URL,
    ),
    Reference(
        "fashion_mnist", "2 Conv + pooling (TensorFlow tutorial)", 91.6, "no preprocessing",
        ZALANDO, ZALANDO_URL,
    ),
    Reference("fashion_mnist", "MLP 256-128-100", 88.33, "no preprocessing", ZALANDO, ZALANDO_URL),
    Reference(
        "fashion_mnist", "Human (crowd-sourced)", 83.5,
        "1000 test images, 3 labels each, majority vote; no fashion expertise",
        ZALANDO, ZALANDO_URL,
    ),
)  # fmt: skip


# Said under the dataset's table in the report.
CAVEATS = {
    "fashion_mnist": "Fashion-MNIST figures are submitted results listed in Zalando's "
    "benchmark table; Zalando notes it has not re-run them.",
}


def references_for(dataset: str) -> list[Reference]:
    return [r for r in REFERENCES if r.dataset == dataset]
