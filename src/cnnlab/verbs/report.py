"""Compare runs: `cnnlab report <run dir | multirun dir> ... [out_dir=...]`.

Writes report.md (images beside it) and report.html (the same report, self-contained:
every image embedded, no scripts, nothing fetched) with:
  - one table row per run: experiment, model, params, MACs, receptive field, optimizer,
    scheduler, augmentation, epochs, train time, best val acc, test acc/precision/recall/F1
    (a run without metrics.json is listed as failed, not dropped);
  - validation accuracy and loss of every run overlaid, from its TensorBoard (or CSV) log;
  - a per-class F1 heat-map;
  - for a sweep (values that differ between runs' command-line overrides), test accuracy
    against each swept hyperparameter;
  - for runs that differ only in `data.fold` (k-fold cross-validation), mean ± std over folds;
  - the runs beside published results for the same dataset, with sources.
Examples:
  cnnlab report outputs/runs/<run a> outputs/runs/<run b>
  cnnlab report outputs/multiruns/<sweep> out_dir=/tmp/report title="LR sweep"
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import markdown as markdown_lib
import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf

from cnnlab.errors import CnnlabError, exits_cleanly
from cnnlab.reporting import figures
from cnnlab.reporting.inspection import count_macs, count_params, receptive_field
from cnnlab.reporting.markdown import table
from cnnlab.reporting.references import CAVEATS, references_for
from cnnlab.sweeps.folds import FOLD_KEY, fold_statistics
from cnnlab.training.build import build_model
from cnnlab.training.callbacks.artifacts import CONFUSION_FILE, CURVES_FILE
from cnnlab.verbs.cli import parse
from cnnlab.verbs.describe import TITLES
from cnnlab.verbs.runs import (
    build_datamodule,
    config_of_run_dir,
    find_runs,
    output_dir,
    read_curve,
    read_metrics,
    saved_choices,
    saved_overrides,
)

REPORT_MD, REPORT_HTML = "report.md", "report.html"
FAILED = "FAILED"
MULTIRUN_FILE = "multirun.yaml"  # Hydra writes it at the top of every multirun dir
# Logged validation curves overlaid in the report (R² only for regression runs).
CURVE_TAGS = {
    "val/acc": "validation accuracy",
    "val/loss": "validation loss",
    "val/r2": "validation R²",
}
# Overrides that say where a run went, not what it did: never treated as swept.
NOT_HYPERPARAMETERS = ("hydra.", "paths.", "callbacks.rich_progress_bar")


@dataclass
class RunSummary:
    """Everything the report shows about one run dir."""

    index: int
    path: Path
    metrics: dict[str, Any] | None
    cfg: DictConfig | None
    choices: dict[str, str]
    overrides: dict[str, Any]
    dataset: str | None = None
    params: int | None = None
    macs: int | None = None
    receptive_field: int | None = None
    curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Tested: classification (test/acc) or regression (test/r2) metrics are there."""
        return self.metrics is not None and any(
            self.metrics.get(key) is not None for key in ("test/acc", "test/r2")
        )

    @property
    def status(self) -> str:
        if self.ok:
            return "ok"
        if self.metrics is None:
            return FAILED
        return "no test metrics"

    @property
    def model(self) -> str:
        if "model" in self.choices:
            return self.choices["model"]
        target = OmegaConf.select(self.cfg, "model._target_") if self.cfg is not None else None
        return str(target).rsplit(".", 1)[-1] if target else "?"

    varied: tuple[str, ...] = ()  # the keys the compared runs differ in (set by the report)

    @property
    def label(self) -> str:
        """`#2 simple_cnn`, or `#2 lr=0.002` when the runs differ in their overrides."""
        values = [f"{k.rsplit('.', 1)[-1]}={self.overrides[k]}" for k in self.varied
                  if k in self.overrides]  # fmt: skip
        return f"#{self.index} {', '.join(values) if values else self.model}"

    def metric(self, key: str) -> Any:
        return (self.metrics or {}).get(key)


def parse_override(text: str) -> tuple[str, Any] | None:
    """`optim.lr=0.01` -> ("optim.lr", 0.01); `+trainer.x=1` -> ("trainer.x", 1)."""
    if "=" not in text:
        return None
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    if not isinstance(parsed, (int, float, str, bool)) or parsed is None:
        parsed = value
    return key.lstrip("+~"), parsed


def inspect_run(summary: RunSummary, cache: dict[str, tuple[int, int, int | None, str]]) -> None:
    """Params, MACs and receptive field of the model rebuilt from the run's config."""
    if summary.cfg is None:
        return
    # The whole data node: tabular options share one _target_ but differ in input width.
    key = json.dumps(
        OmegaConf.to_container(summary.cfg.model, resolve=True)
        | {"data": OmegaConf.to_container(summary.cfg.data, resolve=False)},
        sort_keys=True,
        default=str,
    )
    if key not in cache:
        datamodule = build_datamodule(summary.cfg)
        model = build_model(summary.cfg.model, datamodule)
        try:
            field_px: int | None = receptive_field(model)
        except (NotImplementedError, RuntimeError, ValueError):
            field_px = None
        cache[key] = (count_params(model), count_macs(model), field_px, datamodule.name)
    summary.params, summary.macs, summary.receptive_field, summary.dataset = cache[key]


def summarize(run_dir: Path, index: int, cache: dict) -> RunSummary:
    overrides = dict(p for o in saved_overrides(run_dir) if (p := parse_override(o)))
    summary = RunSummary(
        index=index,
        path=run_dir,
        metrics=read_metrics(run_dir),
        cfg=None,
        choices=saved_choices(run_dir),
        overrides=overrides,
    )
    try:
        summary.cfg = config_of_run_dir(run_dir)
        inspect_run(summary, cache)
    except CnnlabError as err:
        summary.problems.append(str(err))
    for tag in CURVE_TAGS:
        try:
            summary.curves[tag] = read_curve(run_dir, tag)
        except Exception as err:  # a damaged event file must not sink the whole report
            summary.problems.append(f"{tag} curve unreadable: {err}")
    return summary


def tested_acc(runs: Sequence[RunSummary]) -> list[RunSummary]:
    """Runs with a test accuracy (regression runs have R² instead)."""
    return [r for r in runs if r.ok and r.metric("test/acc") is not None]


def swept_value(run: RunSummary, key: str) -> str | None:
    """As typed on the command line (0.002, not 0.0020)."""
    return str(run.overrides[key]) if key in run.overrides else None


def swept_keys(runs: Sequence[RunSummary]) -> list[str]:
    """What each sweep varied: override keys that every job of one multirun dir sets, with
    more than one value among them. Runs outside a sweep vary in too many ways to say."""
    sweeps: dict[Path, list[RunSummary]] = {}
    for r in runs:
        if (r.path.parent / MULTIRUN_FILE).is_file():
            sweeps.setdefault(r.path.parent, []).append(r)
    swept: set[str] = set()
    for jobs in sweeps.values():
        common = set.intersection(*(set(r.overrides) for r in jobs))
        swept |= {
            k
            for k in common
            if not k.startswith(NOT_HYPERPARAMETERS)
            and len({repr(r.overrides[k]) for r in jobs}) > 1
        }
    return sorted(swept)


# ----------------------------------------------------------------------------- formatting


def human(n: int | None, unit: str = "") -> str | None:
    if n is None:
        return None
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.2f} {suffix}{unit}"
    return f"{n} {unit}".strip()


def duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def optimizer_text(summary: RunSummary) -> str | None:
    cfg = summary.cfg
    if cfg is None or "optim" not in cfg:
        return summary.choices.get("optim")
    name = summary.choices.get("optim") or str(cfg.optim.get("_target_", "?")).rsplit(".", 1)[-1]
    parts = [name]
    for key, short in (("lr", "lr"), ("weight_decay", "wd"), ("momentum", "mom")):
        value = cfg.optim.get(key)
        if isinstance(value, (int, float)) and (value or key == "lr"):
            parts.append(f"{short}={value:g}")
    return " ".join(parts)


def group_text(summary: RunSummary, group: str, node: str) -> str | None:
    if group in summary.choices:
        return summary.choices[group]
    target = OmegaConf.select(summary.cfg, node) if summary.cfg is not None else None
    return str(target).rsplit(".", 1)[-1] if target else ("none" if summary.cfg else None)


def percent(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.2f}"


# ----------------------------------------------------------------------------- sections


class Column(NamedTuple):
    """One report column: its header, the cell of a run, and whether it is a number."""

    header: str
    cell: Callable[[RunSummary], Any]
    numeric: bool = False


def metric_column(header: str, key: str, as_percent: bool = True) -> Column:
    if as_percent:
        return Column(header, lambda r: percent(r.metric(key)), numeric=True)
    return Column(header, lambda r: r.metric(key), numeric=True)


def swept_columns(swept: Sequence[str]) -> list[Column]:
    return [Column(key, lambda r, key=key: swept_value(r, key)) for key in swept]


def column_table(columns: Sequence[Column], runs: Sequence[RunSummary]) -> str:
    return table(
        [c.header for c in columns],
        [[c.cell(r) for c in columns] for r in runs],
        right=[i for i, c in enumerate(columns) if c.numeric],
    )


def setup_table(runs: Sequence[RunSummary], swept: Sequence[str], base: Path) -> str:
    """What each run was: data, model and its size, and the training setup."""
    columns = [
        Column("#", lambda r: r.index, numeric=True),
        *swept_columns(swept),
        Column("run", lambda r: relative(r.path, base)),
        Column("data", lambda r: TITLES.get(r.dataset or "", r.dataset)),
        Column(
            "experiment",
            lambda r: (
                r.choices.get("experiment")
                or (r.cfg.get("task_name") if r.cfg is not None else None)
            ),
        ),
        Column("model", lambda r: r.model),
        Column("params", lambda r: human(r.params), numeric=True),
        Column("MACs", lambda r: human(r.macs), numeric=True),
        Column(
            "receptive field",
            lambda r: f"{r.receptive_field} px" if r.receptive_field else None,
            numeric=True,
        ),
        Column("optimizer", optimizer_text),
        Column("scheduler", lambda r: group_text(r, "scheduler", "scheduler.scheduler._target_")),
        Column("augmentation", lambda r: group_text(r, "augment", "augment._target_")),
    ]
    return column_table(columns, runs)


# Shown when some run is a regression (tabular case study): R² and errors in target units.
REGRESSION_COLUMNS = (
    metric_column("best val R²", "best_val_r2", as_percent=False),
    metric_column("test R²", "test/r2", as_percent=False),
    metric_column("test MAE", "test/mae", as_percent=False),
    metric_column("test RMSE", "test/rmse", as_percent=False),
)


def results_table(runs: Sequence[RunSummary], swept: Sequence[str]) -> str:
    """How each run did; a run without metrics is marked, never dropped. Best acc in bold."""
    best = max((r.metric("test/acc") for r in tested_acc(runs)), default=None)

    def test_acc(r: RunSummary) -> str | None:
        acc = percent(r.metric("test/acc"))
        bold = acc is not None and r.metric("test/acc") == best and len(runs) > 1
        return f"**{acc}**" if bold else acc

    columns = [
        Column("#", lambda r: r.index, numeric=True),
        *swept_columns(swept),
        Column("data", lambda r: TITLES.get(r.dataset or "", r.dataset)),
        Column("model", lambda r: r.model),
        Column("status", lambda r: r.status if r.ok else f"**{r.status}**"),
        metric_column("epochs", "epochs", as_percent=False),
        Column("train time", lambda r: duration(r.metric("train_seconds")), numeric=True),
        metric_column("best val acc %", "best_val_acc"),
        Column("test acc %", test_acc, numeric=True),
        metric_column("precision %", "test/precision"),
        metric_column("recall %", "test/recall"),
        metric_column("F1 %", "test/f1"),
        *(c for c in REGRESSION_COLUMNS if any(c.cell(r) is not None for r in runs)),
    ]
    return column_table(columns, runs)


# Cross-validation columns: metric key, header, shown as a percentage.
CV_COLUMNS = (
    ("best_val_acc", "best val acc % (CV)", True),
    ("test/acc", "test acc %", True),
    ("test/f1", "F1 %", True),
    ("best_val_r2", "best val R² (CV)", False),
    ("test/r2", "test R²", False),
    ("test/mae", "test MAE", False),
)


def mean_pm_std(stats: dict[str, Any], key: str, as_percent: bool) -> str | None:
    mean, std = stats.get(f"{key} mean"), stats.get(f"{key} std")
    if mean is None:
        return None
    scale, digits = (100, 2) if as_percent else (1, 4)
    text = f"{scale * mean:.{digits}f}"
    return text + (f" ± {scale * std:.{digits}f}" if std is not None else "")


def cross_validation_section(runs: Sequence[RunSummary], swept: Sequence[str]) -> list[str]:
    """Runs that differ only in data.fold: one row per group, mean ± std over its folds."""
    groups: dict[tuple[tuple[str, str], ...], list[RunSummary]] = {}
    for r in runs:
        if r.ok and FOLD_KEY in r.overrides:
            key = tuple(
                sorted(
                    (k, repr(v))
                    for k, v in r.overrides.items()
                    if k != FOLD_KEY and not k.startswith(NOT_HYPERPARAMETERS)
                )
            )
            groups.setdefault(key, []).append(r)
    groups = {k: v for k, v in groups.items() if len(v) > 1}
    if not groups:
        return []
    stats = {key: fold_statistics([m.metrics or {} for m in g]) for key, g in groups.items()}
    shown = [c for c in CV_COLUMNS if any(f"{c[0]} mean" in s for s in stats.values())]
    others = [k for k in swept if k != FOLD_KEY]
    rows = [
        [
            ", ".join(f"#{m.index}" for m in members),
            ", ".join(f"{k}={swept_value(members[0], k)}" for k in others) or "all",
            len(members),
            *(mean_pm_std(stats[key], metric, pct) for metric, _, pct in shown),
        ]
        for key, members in groups.items()
    ]
    headers = ["runs", "setting", "folds", *(header for _, header, _ in shown)]
    return [
        "## Cross-validation",
        "",
        "Runs that differ only in `data.fold`: mean ± standard deviation (sample, over folds). "
        "The validation score is the cross-validation estimate (each fold held out once); "
        "test scores are each fold's model on the same test set.",
        "",
        table(headers, rows, right=range(2, len(headers))),
        "",
    ]


def relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive on Windows
        return str(path)


def image_link(path: Path, base: Path, alt: str) -> str:
    """A Markdown image with a URL-quoted relative path (run dirs may hold spaces)."""
    return f"![{alt}]({urllib.parse.quote(relative(path, base))})"


def reference_section(runs: Sequence[RunSummary], out: Path) -> list[str]:
    lines = ["## Beside published results", ""]
    lines.append(
        "Published test accuracies for the same datasets, each with its source. They come "
        "from far larger budgets (GPU hours, long schedules, and for ViT 300M extra "
        "pre-training images): they place these runs, they are not a like-for-like comparison."
    )
    lines.append("")
    datasets = sorted({r.dataset for r in runs if r.dataset}) or ["cifar10", "fashion_mnist"]
    for dataset in datasets:
        refs = references_for(dataset)
        if not refs:
            continue
        title = TITLES.get(dataset, dataset)
        ours = sorted(
            (r for r in tested_acc(runs) if r.dataset == dataset),
            key=lambda r: r.metric("test/acc"),
            reverse=True,
        )[:8]
        entries = [(f"{ref.method}", ref.accuracy, False) for ref in refs]
        entries += [(f"this report: {r.label}", 100 * r.metric("test/acc"), True) for r in ours]
        name = f"reference_{dataset}.png"
        figures.save(figures.reference_bars(entries, f"{title}: test accuracy"), out / name)
        lines += [f"### {title}", "", f"![{title} beside published results]({name})", ""]
        rows = [
            [ref.method, f"{ref.accuracy:.2f}", ref.note, f"[{ref.source}]({ref.url})"]
            for ref in refs
        ]
        rows += [
            [
                f"**this report: {r.label}**",
                f"**{percent(r.metric('test/acc'))}**",
                relative(r.path, out),
                "",
            ]
            for r in ours
        ]
        lines += [table(["method", "test acc %", "notes", "source"], rows, right=(1,)), ""]
        if dataset in CAVEATS:
            lines += [CAVEATS[dataset], ""]
    return lines


def per_class_section(ok: Sequence[RunSummary], out: Path) -> list[str]:
    """One runs x classes F1 heat-map per dataset (class lists differ between datasets)."""
    groups: dict[tuple[str, ...], list[RunSummary]] = {}
    for r in ok:
        if r.metric("per_class"):
            groups.setdefault(tuple(r.metric("per_class")), []).append(r)
    if not groups:
        return []
    lines = ["## Per-class F1", ""]
    for classes, runs in groups.items():
        dataset = runs[0].dataset or "data"
        title = TITLES.get(dataset, dataset)
        values = np.array(
            [[r.metric("per_class")[c].get("f1", math.nan) for c in classes] for r in runs]
        )
        name = f"per_class_f1_{dataset}.png"
        fig = figures.heatmap(values, [r.label for r in runs], list(classes),
                              f"{title}: per-class F1 on the test set", "F1")  # fmt: skip
        figures.save(fig, out / name)
        lines += [f"![{title} per-class F1]({name})", ""]
    return lines


def build_report(run_dirs: Sequence[Path], out: Path, title: str) -> tuple[str, list[RunSummary]]:
    """Write the figures into `out`; return the Markdown and the run summaries."""
    cache: dict[str, Any] = {}
    runs = [summarize(path, i + 1, cache) for i, path in enumerate(run_dirs)]
    swept = swept_keys(runs)
    for r in runs:
        r.varied = tuple(swept)
    ok = [r for r in runs if r.ok]
    failed = [r for r in runs if not r.ok]
    lines = [
        f"# {title}",
        "",
        f"{len(runs)} run(s), {len(ok)} with test metrics"
        + (f", **{len(failed)} failed or unfinished**" if failed else "")
        + f". Generated {time.strftime('%Y-%m-%d %H:%M')} by `cnnlab report`.",
        "",
    ]
    if tested_acc(ok):
        best = max(tested_acc(ok), key=lambda r: r.metric("test/acc"))
        lines += [
            f"Best test accuracy: **{percent(best.metric('test/acc'))}%** ({best.label}, "
            f"`{relative(best.path, out)}`).",
            "",
        ]
    lines += ["## Results", "", results_table(runs, swept), ""]
    lines += [
        "Test accuracy, precision, recall and F1 are on the official test set (precision, "
        "recall and F1 are macro averages over classes), for each run's checkpoint with the "
        f"best validation accuracy (regression runs: R², MAE and RMSE in the target's units, "
        f"for the best validation R²). {FAILED}: the run left no metrics.json (it crashed, was "
        "stopped, or is still running).",
        "",
    ]
    lines += cross_validation_section(runs, swept)
    lines += [
        "## Setup",
        "",
        setup_table(runs, swept, out),
        "",
        "Parameters, MACs (per image or table row) and receptive field (of the last spatial "
        "feature map; none for a model of table rows) are measured on each model rebuilt "
        "from its run's config.",
        "",
    ]
    problems = [(r, p) for r in runs for p in r.problems]
    if problems:
        lines += ["Problems met while reading runs:", ""]
        lines += [f"- #{r.index} `{relative(r.path, out)}`: {p}" for r, p in problems] + [""]

    lines += ["## Validation curves", ""]
    for tag, label in CURVE_TAGS.items():
        series = {r.label: r.curves[tag] for r in runs if r.curves.get(tag, ([], []))[0]}
        if tag == "val/r2" and not series:
            continue  # no regression run among them
        name = f"{tag.replace('/', '_')}.png"
        figures.save(
            figures.overlaid_curves(series, label, f"{label[0].upper()}{label[1:]} per epoch"),
            out / name,
        )
        lines += [f"![{label}]({name})", ""]

    lines += per_class_section(ok, out)

    if swept and tested_acc(ok):
        points = {
            k: [(r.overrides[k], r.metric("test/acc")) for r in tested_acc(ok) if k in r.overrides]
            for k in swept
        }
        figures.save(figures.sweep_panels(points), out / "sweep.png")
        lines += ["## Test accuracy against what the runs vary", ""]
        lines += [f"Varied: {', '.join(f'`{k}`' for k in swept)} (from each run's overrides).", ""]
        lines += ["![test accuracy against each swept value](sweep.png)", ""]
        if failed:
            lines += [
                f"Failed runs are not plotted: {', '.join(f'#{r.index}' for r in failed)}.",
                "",
            ]

    lines += reference_section(runs, out)

    lines += ["## Each run", ""]
    for r in runs:
        lines += [
            f'<details markdown="1"><summary>{html.escape(r.label)} — '
            f"{html.escape(r.status)} — {html.escape(relative(r.path, out))}</summary>",
            "",
        ]
        overrides = " ".join(f"{k}={v}" for k, v in r.overrides.items()) or "(none)"
        lines += [f"Overrides: `{overrides}`", ""]
        for name in (CURVES_FILE, CONFUSION_FILE):
            if (r.path / name).is_file():
                lines += [image_link(r.path / name, out, f"{r.label} {name}"), ""]
        lines += ["</details>", ""]
    return "\n".join(lines), runs


CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1400px;
       padding: 0 1rem; color: #222; line-height: 1.45; }
table { border-collapse: collapse; font-size: 0.82rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccd; padding: 0.25rem 0.5rem; white-space: nowrap; }
th { background: #eef1f6; }
tr:nth-child(even) td { background: #f8f9fb; }
img { max-width: 100%; height: auto; }
code { background: #f1f1f1; padding: 0 0.2rem; }
details { margin: 0.5rem 0; } summary { cursor: pointer; }
"""


def to_html(markdown_text: str, base: Path, title: str) -> str:
    """The Markdown as one HTML file with every image embedded as base64 PNG."""
    body = markdown_lib.markdown(markdown_text, extensions=["tables", "md_in_html"])

    def embed(match: re.Match[str]) -> str:
        src = urllib.parse.unquote(html.unescape(match.group(1)))
        if src.startswith("data:"):
            return match.group(0)
        data = base64.b64encode((base / src).read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+)"', embed, body)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def report(
    paths: Sequence[str | Path], out: Path, title: str = "cnnlab report"
) -> list[RunSummary]:
    run_dirs = find_runs(list(paths))
    markdown_text, runs = build_report(run_dirs, out, title)
    (out / REPORT_MD).write_text(markdown_text)
    (out / REPORT_HTML).write_text(to_html(markdown_text, out, title))
    return runs


def default_out(paths: Sequence[str], log_dir: str) -> Path:
    """A lone multirun dir keeps its report inside it; anything else goes to outputs/reports."""
    if len(paths) == 1:
        given = Path(paths[0]).expanduser()
        if (
            given.is_dir()
            and not (given / ".hydra").is_dir()
            and not (given / "metrics.json").exists()
        ):
            return given / "report"
    return Path(log_dir) / "reports" / time.strftime("%Y-%m-%d_%H-%M-%S")


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    command = parse("report", argv, __doc__, positional=True)
    cfg = command.cfg
    if not command.paths:
        raise CnnlabError(
            "name at least one run dir or multirun dir: cnnlab report outputs/runs/<run>"
        )
    find_runs(command.paths)  # fail on a bad path before creating anything
    out = output_dir(cfg.out_dir, default_out(command.paths, cfg.paths.log_dir))
    runs = report(command.paths, out, cfg.title)
    failed = [r for r in runs if not r.ok]
    print(f"{len(runs)} runs ({len(failed)} without test metrics)")
    print(f"wrote {out / REPORT_MD}\nwrote {out / REPORT_HTML}")


if __name__ == "__main__":
    main()
