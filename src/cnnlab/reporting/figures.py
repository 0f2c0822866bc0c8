"""Every picture cnnlab draws: training curves, confusion matrices, image grids, comparisons.

Figures are built on `matplotlib.figure.Figure` with the Agg canvas directly instead of
`pyplot`: no global backend switch, no figure registry to leak from long sweeps, and it
works headless (CI, SSH, DataLoader workers) without a display.

Sizes are fixed in inches at `DPI`, and `save` never crops (`bbox_inches` stays unset), so a
figure's pixel size is known from its inputs (tests check it); `constrained` layout keeps
labels inside the canvas instead.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

DPI = 100
# One colour per run in comparisons (matplotlib's tab10, cycled).
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip
TRAIN_COLOR, VAL_COLOR, TARGET_COLOR = "#1f77b4", "#ff7f0e", "#2ca02c"


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A figure of `width` x `height` inches, rounded to whole pixels at `DPI`.

    `layout=None` for figures whose margins are set by hand: constrained layout draws the
    figure once more to measure it (about half a second for the training curves).
    """
    size = (round(width * DPI) / DPI, round(height * DPI) / DPI)
    fig = Figure(figsize=size, dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Write `fig` as PNG at `DPI` (uncropped: pixel size = figsize x DPI)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png")
    return buffer.getvalue()


def rgb_pixels(fig: Figure) -> np.ndarray:
    """The rendered figure as an H x W x 3 uint8 array (for TensorBoard's add_image)."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def figure_pixels(fig: Figure) -> tuple[int, int]:
    """(width, height) in pixels that `save` will write."""
    width, height = fig.get_size_inches()
    return round(width * DPI), round(height * DPI)


# ----------------------------------------------------------------------------- training curves


def training_curves(
    epochs: Sequence[Mapping[str, float]],
    lr: Sequence[tuple[float, float]],
    target: float | None = None,
    title: str = "",
) -> Figure:
    """Three panels: train/val loss, the score (+ the stop-at target), learning rate.

    `epochs`: one mapping per finished epoch with `epoch` (1-based) and any of train/loss,
    val/loss, train/acc, val/acc, val/r2. The score panel shows accuracy, or R² for a
    regression run (which logs no accuracy). `lr`: (fractional epoch, lr) pairs, so a
    per-step schedule (OneCycle) shows its real shape rather than one point per epoch.
    """
    # Fixed margins, not constrained layout: this figure is drawn at the end of every fit,
    # so its cost is part of every run's (one draw instead of two).
    fig = new_figure(15, 4.2, layout=None)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.12, top=0.85 if title else 0.92, wspace=0.2)
    loss_ax, acc_ax, lr_ax = fig.subplots(1, 3)
    x = [row["epoch"] for row in epochs]
    marker = "o" if len(x) <= 30 else None  # a one-epoch run is still visible
    regression = any("val/r2" in row for row in epochs) and not any(
        "val/acc" in row for row in epochs
    )
    score, score_title = ("r2", "R²") if regression else ("acc", "Accuracy")
    for ax, metric, panel in ((loss_ax, "loss", "Loss"), (acc_ax, score, score_title)):
        for stage, color in (("train", TRAIN_COLOR), ("val", VAL_COLOR)):
            points = [
                (e, row[f"{stage}/{metric}"])
                for e, row in zip(x, epochs, strict=True)
                if f"{stage}/{metric}" in row
            ]
            if points:
                label = stage
                if (stage, metric) == ("val", score):
                    best_epoch, best = max(points, key=lambda p: p[1])
                    label = f"val (best {best:.4f}, epoch {best_epoch})"
                ax.plot(*zip(*points, strict=True), marker=marker, color=color, label=label)
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if target is not None:
        acc_ax.axhline(target, color=TARGET_COLOR, linestyle="--", label=f"target {target:g}")
    for ax in (loss_ax, acc_ax):
        if ax.lines:
            ax.legend(loc="best", fontsize=9)
    if lr:
        steps, rates = zip(*lr, strict=True)
        # Each sample is the lr in effect from that point on: drawn as steps, not slopes.
        # Linear axis: warm-up/anneal shapes read best, and a step decay still shows its steps.
        lr_ax.plot(steps, rates, color="#9467bd", drawstyle="steps-post")
        lr_ax.set_ylim(bottom=0)
        lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    else:
        lr_ax.text(0.5, 0.5, "no optimizer steps", ha="center", va="center")
    lr_ax.set_title("Learning rate")
    lr_ax.set_xlabel("epoch")
    lr_ax.grid(alpha=0.3)
    if x:
        for ax in (loss_ax, acc_ax, lr_ax):
            ax.set_xlim(0 if ax is lr_ax else min(x) - 0.2, max(x) + 0.2)
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- confusion matrix


def confusion_matrix(
    cm: torch.Tensor | np.ndarray, classes: Sequence[str], title: str = ""
) -> Figure:
    """Counts in each cell, coloured by the share of the true class (row-normalised), so
    a class with few samples is as readable as a large one; the diagonal is recall."""
    counts = np.asarray(cm, dtype=np.int64)
    n = len(classes)
    side = max(6.0, 0.55 * n + 2.5)
    fig = new_figure(side + 1.0, side)
    ax = fig.subplots()
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ax.set_xticks(range(n), labels=classes, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    font = 8 if n <= 12 else 6
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                ax.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=font,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    total = int(counts.sum())
    accuracy = np.trace(counts) / total if total else float("nan")
    ax.set_title(f"{title + ' - ' if title else ''}{total} images, accuracy {accuracy:.4f}")
    return fig


# ----------------------------------------------------------------------------- image grids


def _display(image: torch.Tensor | np.ndarray) -> tuple[np.ndarray, str | None]:
    """uint8 C x H x W -> what imshow needs (H x W grey or H x W x 3) and its colormap."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 1:
        return array[0], "gray"
    if array.ndim == 3:
        return np.transpose(array, (1, 2, 0)), None
    return array, "gray"


GRID_CELL = 1.15  # inches per image cell in grids


def image_grid(
    images: Sequence[torch.Tensor | np.ndarray],
    captions: Sequence[str],
    columns: int = 8,
    title: str = "",
) -> Figure:
    """Images (uint8 C x H x W) in rows of `columns`, each with a small caption above it."""
    count = max(len(images), 1)
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    fig = new_figure(columns * GRID_CELL * 1.25, rows * GRID_CELL * 1.45 + (0.4 if title else 0))
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, caption in zip(axes, images, captions, strict=False):
        pixels, cmap = _display(image)
        ax.imshow(pixels, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(caption, fontsize=7)
    if not images:
        axes[0].text(0.5, 0.5, "nothing to show", ha="center", va="center")
    if title:
        fig.suptitle(title)
    return fig


def class_samples(
    samples: Sequence[Sequence[torch.Tensor | np.ndarray]], classes: Sequence[str], title: str = ""
) -> Figure:
    """One row per class (name on the left), its sample images across."""
    rows = len(classes)
    columns = max((len(row) for row in samples), default=1)
    fig = new_figure(
        1.6 + columns * GRID_CELL * 0.8, rows * GRID_CELL * 0.8 + (0.5 if title else 0)
    )
    axes = np.asarray(fig.subplots(rows, columns, squeeze=False))
    for r, (name, row) in enumerate(zip(classes, samples, strict=True)):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(row):
                pixels, cmap = _display(row[c])
                ax.imshow(pixels, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- comparisons


def overlaid_curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]], ylabel: str, title: str
) -> Figure:
    """One line per run (label -> (epochs, values)) on shared axes."""
    fig = new_figure(9, 5)
    ax = fig.subplots()
    for i, (label, (x, y)) in enumerate(series.items()):
        ax.plot(
            x,
            y,
            marker="o" if len(x) <= 30 else None,
            markersize=3,
            color=PALETTE[i % len(PALETTE)],
            label=label,
        )
    if not series:
        ax.text(0.5, 0.5, "no logged curves found", ha="center", va="center")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8, loc="best")
    return fig


def heatmap(
    values: np.ndarray, rows: Sequence[str], columns: Sequence[str], title: str, label: str
) -> Figure:
    """A runs x classes matrix in [0, 1] with each value printed (NaN cells left blank)."""
    values = np.asarray(values, dtype=float)
    fig = new_figure(max(7.0, 0.8 * len(columns) + 3.5), max(2.5, 0.45 * len(rows) + 2.0))
    ax = fig.subplots()
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto"
    )
    fig.colorbar(image, ax=ax, label=label)
    ax.set_xticks(
        range(len(columns)), labels=columns, rotation=45, ha="right", rotation_mode="anchor"
    )
    ax.set_yticks(range(len(rows)), labels=rows)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(
                    j,
                    i,
                    f"{values[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if values[i, j] > 0.6 else "white",
                )
    ax.set_title(title)
    return fig


def sweep_panels(
    points: Mapping[str, Sequence[tuple[object, float]]], ylabel: str = "test accuracy"
) -> Figure:
    """One panel per swept hyperparameter: the metric against its values.

    Numeric values are placed on a number line (log scale when they span 10x or more,
    as learning rates and weight decays do); anything else is categorical.
    """
    names = list(points)
    columns = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    fig = new_figure(5 * columns, 3.8 * rows)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    for ax, name in zip(axes, names, strict=False):
        pairs = list(points[name])
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v, _ in pairs)
        if numeric:
            pairs.sort(key=lambda p: float(p[0]))
            xs = [float(v) for v, _ in pairs]
            ax.plot(xs, [y for _, y in pairs], marker="o", linestyle=":", color=PALETTE[0])
            positive = [x for x in xs if x > 0]
            if len(positive) == len(xs) and max(xs) / min(xs) >= 10:
                ax.set_xscale("log")
                # Ticks at the values tried, as typed: log axes' own ticks crowd and overlap.
                ax.set_xticks(sorted(set(xs)), labels=[f"{x:g}" for x in sorted(set(xs))])
                ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            labels = sorted({str(v) for v, _ in pairs})
            where = {label: i for i, label in enumerate(labels)}
            ax.scatter(
                [where[str(v)] for v, _ in pairs], [y for _, y in pairs], color=PALETTE[0], zorder=3
            )
            ax.set_xticks(range(len(labels)), labels=labels, rotation=30, ha="right")
            ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_xlabel(name)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel} against {name}", fontsize=10)
        ax.grid(alpha=0.3)
    return fig


def reference_bars(
    entries: Sequence[tuple[str, float, bool]], title: str, xlabel: str = "test accuracy (%)"
) -> Figure:
    """Horizontal bars (label, accuracy %, is_ours), best at the top; ours highlighted."""
    ordered = sorted(entries, key=lambda e: e[1])
    fig = new_figure(9, 0.38 * len(ordered) + 1.4)
    ax = fig.subplots()
    colors = [PALETTE[1] if ours else "#9aa7b4" for _, _, ours in ordered]
    ax.barh(range(len(ordered)), [v for _, v, _ in ordered], color=colors)
    ax.set_yticks(range(len(ordered)), labels=[label for label, _, _ in ordered], fontsize=8)
    low = min((v for _, v, _ in ordered), default=0.0)
    ax.set_xlim(max(0.0, math.floor(low / 5) * 5 - 5), 100)
    for i, (_, value, _) in enumerate(ordered):
        ax.text(value, i, f" {value:.2f}", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


# ----------------------------------------------------------------------------- study


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def compact_number(value: float) -> str:
    """Axis labels for counts spanning decades: 300k, 1.2M, 5G (not 3 x 10^5)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def labelled_scatter(
    panels: Sequence[tuple[str, Mapping[str, Sequence[tuple[str, float, float]]]]],
    ylabel: str,
    title: str = "",
    log_x: bool = True,
) -> Figure:
    """Side-by-side panels, each `(x label, {series: [(point name, x, y), ...]})`: one colour
    and marker per series (a dataset), every point named, a shared y label.

    For cost-against-accuracy plots, where a reader must find each model at a glance; the
    x axis is logarithmic because model sizes and times span orders of magnitude.
    """
    fig = new_figure(6.2 * max(1, len(panels)), 4.8)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(panels)))).ravel()
    for ax, (xlabel, series) in zip(axes, panels, strict=False):
        drawn = False
        for i, (name, points) in enumerate(series.items()):
            points = [(label, x, y) for label, x, y in points if x and x > 0]
            if not points:
                continue
            drawn = True
            ax.scatter(
                [x for _, x, _ in points],
                [y for _, _, y in points],
                color=PALETTE[i % len(PALETTE)],
                marker=MARKERS[i % len(MARKERS)],
                s=45,
                label=name,
                zorder=3,
            )
            for label, x, y in points:
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if log_x and drawn:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: compact_number(v)))
            ax.xaxis.set_minor_formatter(NullFormatter())
        if not drawn:
            ax.text(0.5, 0.5, "no finished runs", ha="center", va="center")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        if drawn:
            ax.legend(fontsize=8, loc="best")
            ax.margins(x=0.15, y=0.1)
    if title:
        fig.suptitle(title)
    return fig


def seed_bars(groups: Mapping[str, Sequence[float]], ylabel: str, title: str) -> Figure:
    """One bar per option at its mean over seeds, the min-max range as an error bar and each
    seed as a dot: whether two options differ by more than the seed-to-seed noise is
    visible, not hidden in a single number."""
    names = list(groups)
    fig = new_figure(max(5.0, 1.4 * len(names) + 2.5), 4.2)
    ax = fig.subplots()
    means = [float(np.mean(groups[n])) if len(groups[n]) else math.nan for n in names]
    low = [m - min(groups[n]) if len(groups[n]) else 0.0 for m, n in zip(means, names, strict=True)]
    high = [
        max(groups[n]) - m if len(groups[n]) else 0.0 for m, n in zip(means, names, strict=True)
    ]
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    ax.bar(range(len(names)), means, color=colors, alpha=0.55, width=0.6)
    ax.errorbar(
        range(len(names)), means, yerr=[low, high], fmt="none", ecolor="black", capsize=6, lw=1.2
    )
    for i, name in enumerate(names):
        values = list(groups[name])
        if values:
            offsets = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else [0.0]
            ax.scatter([i + o for o in offsets], values, color="black", s=14, zorder=3)
            ax.text(
                i, max(values), f"{np.mean(values):.2f}\n", ha="center", va="bottom", fontsize=8
            )
    finite = [v for n in names for v in groups[n] if math.isfinite(v)]
    if finite:
        span = max(finite) - min(finite)
        ax.set_ylim(max(0.0, min(finite) - max(2.0, span)), max(finite) + max(2.0, 0.6 * span))
    ax.set_xticks(range(len(names)), labels=names)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    return fig


def seed_curve(
    points: Mapping[float, Mapping[str, float]], xlabel: str, ylabel: str, title: str
) -> Figure:
    """A metric against a numeric setting tried with several seeds (`{x: {seed: value}}`):
    each seed's values as dots, their mean as a line, log-x with ticks at the values tried
    (as learning rates are swept), the best mean marked."""
    xs = sorted(points)
    fig = new_figure(7, 4.2)
    ax = fig.subplots()
    seeds = list(dict.fromkeys(seed for x in xs for seed in points[x]))
    for i, seed in enumerate(seeds):
        pairs = [(x, points[x][seed]) for x in xs if seed in points[x]]
        ax.scatter(
            [x for x, _ in pairs],
            [y for _, y in pairs],
            color=PALETTE[i % len(PALETTE)],
            s=18,
            alpha=0.8,
            label=seed,
            zorder=3,
        )
    if xs:
        means = [float(np.mean(list(points[x].values()))) for x in xs]
        ax.plot(xs, means, color="black", marker="o", markersize=4, label="mean")
        if all(x > 0 for x in xs):
            ax.set_xscale("log")
            ax.set_xticks(xs, labels=[f"{x:g}" for x in xs])
            ax.xaxis.set_minor_formatter(NullFormatter())
        best = xs[int(np.nanargmax(means))]
        ax.axvline(best, color="#999999", linestyle=":", lw=1, label=f"best mean: {best:g}")
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    return fig
