"""Describe a dataset as the DataModule serves it: `cnnlab describe data=<name>`.

Classes, images per class in the train / val / test splits (val is the run's seeded split
of the official training set), input dimensionality, per-channel mean and std computed
from the pixels (next to the normalisation constants in conf/data/<name>.yaml), and
samples.png with a row of sample images per class. A data module family that describes
itself (`describe_markdown()`: the tabular sets, with features and their types, target
distribution and preprocessing steps) supplies its own Markdown instead. The Markdown is
printed and written to describe.md (beside samples.png for images).
Examples:
  cnnlab describe data=fashion_mnist
  cnnlab describe data=cifar10 samples_per_class=12 out_dir=/tmp/cifar
  cnnlab describe data=diabetes
  cnnlab describe data=csv data.path=my.csv data.target=label
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from omegaconf import DictConfig

from cnnlab.data.split import Split
from cnnlab.errors import CnnlabError, exits_cleanly
from cnnlab.reporting import figures
from cnnlab.reporting.markdown import table
from cnnlab.training.build import build
from cnnlab.training.validation import validate_data
from cnnlab.verbs.cli import parse
from cnnlab.verbs.runs import output_dir

MARKDOWN_FILE, SAMPLES_FILE = "describe.md", "samples.png"
# How the datasets are written in their papers (a DataModule's `name` is a config name).
TITLES = {"cifar10": "CIFAR-10", "fashion_mnist": "Fashion-MNIST"}


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of pixels / 255 over a uint8 N x C x H x W split.

    Exact integer sums over chunks: a float copy of CIFAR-10's training set would need
    over 600 MB, and float32 running sums drift at 10^8 values.
    """
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.int64)
    squares = torch.zeros(channels, dtype=torch.int64)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].to(torch.int64)
        total += block.sum(dim=(0, 2, 3))
        squares += (block * block).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total.double() / count
    var = squares.double() / count - mean * mean
    return (mean / 255).tolist(), (var.clamp(min=0).sqrt() / 255).tolist()


def class_counts(split: Split, classes: int) -> list[int]:
    return torch.bincount(split.labels, minlength=classes).tolist()


def pick_samples(split: Split, classes: int, per_class: int, seed: int) -> list[list[torch.Tensor]]:
    """`per_class` random images of each class (seeded), for the sample grid."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for c in range(classes):
        where = (split.labels == c).nonzero().flatten()
        chosen = where[torch.randperm(len(where), generator=generator)[:per_class]]
        rows.append([split.images[i] for i in chosen])
    return rows


@runtime_checkable
class DescribesItself(Protocol):
    """A data module family that writes its own overview (e.g. TabularDataModule):
    `describe_markdown()` for describe.md, `summary()` for the facts behind it."""

    def describe_markdown(self) -> str: ...

    def summary(self) -> dict[str, Any]: ...


def describe(data_cfg: DictConfig, per_class: int = 10, seed: int = 0) -> tuple[str, Any, dict]:
    """(Markdown, samples figure or None, facts) for the dataset of a `data` config node."""
    validate_data(data_cfg)
    return describe_datamodule(build(data_cfg, "data"), data_cfg, per_class, seed)


def describe_datamodule(
    dm: Any, data_cfg: DictConfig, per_class: int = 10, seed: int = 0
) -> tuple[str, Any, dict]:
    """The module's own overview when it has one, else the image overview below."""
    if isinstance(dm, DescribesItself):
        return dm.describe_markdown(), None, dm.summary()
    return describe_images(dm, data_cfg, per_class, seed)


def describe_images(
    dm: Any, data_cfg: DictConfig, per_class: int = 10, seed: int = 0
) -> tuple[str, Any, dict]:
    """Counts per class and split, pixel statistics and the samples grid of an image set."""
    dm.setup(None)
    train, val, test = dm.train_split, dm.val_split, dm.test_split
    classes = list(dm.classes)
    n = len(classes)
    counts = {
        name: class_counts(s, n) for name, s in (("train", train), ("val", val), ("test", test))
    }
    full_train = Split(torch.cat([train.images, val.images]), torch.cat([train.labels, val.labels]))
    stats = {
        "training split": channel_stats(train.images),
        "official training set": channel_stats(full_train.images),
        "test set": channel_stats(test.images),
    }
    c, h, w = dm.in_channels, dm.image_size, dm.image_size
    channel_names = ["grey"] if c == 1 else ["red", "green", "blue"][:c]
    title = TITLES.get(dm.name, dm.name)

    lines = [
        f"# Dataset: {title} (`data={dm.name}`)",
        "",
        f"- Files: `{dm.data_dir}`",
        f"- Input: {c} x {h} x {w} ({'greyscale' if c == 1 else 'RGB'}, uint8 pixels 0-255) "
        f"= {c * h * w:,} values per image",
        f"- Classes: {n}",
        f"- Splits: train {len(train):,} / val {len(val):,} / test {len(test):,} images. "
        + (
            f"Val is fold {dm.fold} of `data.folds={dm.folds}` (stratified, "
            if dm.folds
            else "Val is a seeded random split ("
        )
        + f"`data.split_seed={dm.split_seed}`"
        + ("" if dm.folds else f", `data.val_size={dm.val_size}`")
        + f") of the official {len(full_train):,} training "
        f"images; test is the official {len(test):,}-image test set.",
        "",
        "## Images per class",
        "",
    ]
    rows: list[list[Any]] = [
        [i, name, counts["train"][i], counts["val"][i], counts["test"][i]]
        for i, name in enumerate(classes)
    ]
    rows.append(["", "**total**", len(train), len(val), len(test)])
    lines += [table(["label", "class", "train", "val", "test"], rows, right=(0, 2, 3, 4)), ""]
    lines += [
        "## Per-channel pixel statistics (pixels / 255)",
        "",
        "Computed from the pixels; the last row is the normalisation the data config applies "
        "(`data.mean`, `data.std`).",
        "",
    ]
    headers = ["computed on"] + [f"{ch} {m}" for ch in channel_names for m in ("mean", "std")]
    stat_rows: list[list[Any]] = [
        [where] + [v for pair in zip(mean, std, strict=True) for v in pair]
        for where, (mean, std) in stats.items()
    ]
    stat_rows.append(
        ["config"]
        + [float(v) for pair in zip(data_cfg.mean, data_cfg.std, strict=True) for v in pair]
    )
    lines += [table(headers, stat_rows, right=range(1, len(headers))), ""]
    lines += [
        "## Samples",
        "",
        f"{per_class} random training images per class (seed {seed}), one row per class:",
        "",
        f"![samples per class]({SAMPLES_FILE})",
        "",
    ]
    fig = figures.class_samples(
        pick_samples(train, n, per_class, seed), classes, title=f"{title}: samples per class"
    )
    facts = {
        "name": dm.name,
        "classes": classes,
        "counts": counts,
        "stats": stats,
        "input_shape": (c, h, w),
    }
    return "\n".join(lines), fig, facts


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    command = parse("describe", argv, __doc__)
    cfg = command.cfg
    if cfg.samples_per_class < 1:
        raise CnnlabError(f"samples_per_class must be >= 1 (got {cfg.samples_per_class})")
    validate_data(cfg.data)
    datamodule = build(cfg.data, "data")
    datamodule.prepare_data()  # a missing dataset fails here, before anything is written
    # Described before the output dir exists: a bad CSV fails with nothing created.
    markdown, fig, _ = describe_datamodule(datamodule, cfg.data, cfg.samples_per_class, cfg.seed)
    out = output_dir(cfg.out_dir, Path(cfg.paths.log_dir) / "describe" / datamodule.name)
    (out / MARKDOWN_FILE).write_text(markdown)
    print(markdown)
    print(f"wrote {out / MARKDOWN_FILE}")
    if fig is not None:
        figures.save(fig, out / SAMPLES_FILE)
        print(f"wrote {out / SAMPLES_FILE}")


if __name__ == "__main__":
    main()
