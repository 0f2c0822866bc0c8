"""Evaluate any checkpoint on a data split: `cnnlab evaluate ckpt_path=<ckpt>`.

Model and data config come back from the checkpoint (or its run dir), and so does a
tabular run's fitted preprocessing; `split=val` scores the run's own validation split.
Writes into a new output dir:
  metrics.json          <split>/acc, /precision, /recall, /f1, /loss (regression: /mae,
                        /rmse, /r2, /loss): the keys training's metrics.json uses for the
                        test split, + per_class for classification
  confusion_matrix.png  per_class.md   (classification; the same writer as in training)
  misclassified.png     the most confidently wrong images, with true/predicted class
                        (image data)
Examples:
  cnnlab evaluate ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt
  cnnlab evaluate ckpt_path=<ckpt> split=val out_dir=/tmp/eval
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from rich.console import Console
from rich.table import Table

from cnnlab.checkpoints.atomic import strict_json
from cnnlab.data.base import ImageDataModule
from cnnlab.errors import CnnlabError, exits_cleanly
from cnnlab.reporting import figures
from cnnlab.training.build import build, resolve_precision
from cnnlab.training.callbacks.artifacts import CONFUSION_FILE, PER_CLASS_FILE, ClassificationReport
from cnnlab.verbs.cli import parse
from cnnlab.verbs.runs import load_run, output_dir

SPLITS = ("test", "val")
MISCLASSIFIED_FILE = "misclassified.png"
METRICS_FILE = "metrics.json"


class LogitsRecorder(Callback):
    """Keeps every test batch's logits and labels, from the one test pass that also computes
    the metrics (a forward hook on the model: the module's test_step stays as it is)."""

    def __init__(self) -> None:
        self.logits: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self._last: torch.Tensor | None = None
        self._handle: Any = None

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        def keep(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
            self._last = output.detach().float().cpu()

        self._handle = pl_module.model.register_forward_hook(keep)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        assert self._last is not None
        self.logits.append(self._last)
        self.labels.append(batch[1].cpu())

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._handle is not None:
            self._handle.remove()


def most_confident_mistakes(
    logits: torch.Tensor, labels: torch.Tensor, count: int
) -> list[tuple[int, int, int, float]]:
    """(index, true, predicted, confidence) of the `count` wrong predictions the model was
    surest of: where it is confidently wrong, labels or the model are worth a look."""
    probs = logits.softmax(dim=1)
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != labels).nonzero().flatten()
    order = confidence[wrong].argsort(descending=True)[:count]
    return [(int(i), int(labels[i]), int(predicted[i]), float(confidence[i])) for i in wrong[order]]


def evaluate(
    ckpt_path: str | Path,
    split: str = "test",
    out_dir: str | None = None,
    overrides: Sequence[Any] = (),
    misclassified: int = 36,
    accelerator: str = "auto",
    precision: Any = "auto",
) -> tuple[dict[str, Any], Path]:
    """Score a checkpoint on `split`; returns (metrics, output dir)."""
    if split not in SPLITS:
        raise CnnlabError(f"split={split} is not one of {', '.join(SPLITS)}; e.g. split=test")
    loaded = load_run(ckpt_path, list(overrides))
    base = (
        loaded.run_dir / "eval" / f"{split}-{loaded.ckpt_path.stem}"
        if loaded.run_dir is not None
        else loaded.ckpt_path.with_name(f"{loaded.ckpt_path.stem}-eval-{split}")
    )
    dm = loaded.datamodule
    dm.test_on(split)
    images = dm.test_split.images if isinstance(dm, ImageDataModule) else None
    out = output_dir(out_dir, base)

    module = build(
        loaded.cfg.module,
        "module",
        model=loaded.model,
        optimizer=None,  # never trained here
        class_names=loaded.classes,
    )
    recorder = LogitsRecorder()
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=resolve_precision(accelerator, precision),
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        callbacks=[ClassificationReport(out, title=f"{split} split"), recorder],
        default_root_dir=out,
    )
    results = trainer.test(module, datamodule=dm, verbose=False)[0]
    metrics: dict[str, Any] = {
        f"{split}/{key.removeprefix('test/')}": float(value)
        for key, value in results.items()
        if not key.startswith("test_per_class/")
    }
    logits, labels = torch.cat(recorder.logits), torch.cat(recorder.labels)
    metrics.update(module.results())  # e.g. per-class scores
    metrics.update(
        {
            "split": split,
            "num_samples": int(labels.numel()),
            "checkpoint": str(loaded.ckpt_path),
            "run_dir": str(loaded.run_dir) if loaded.run_dir else None,
            "model": loaded.cfg.model.get("_target_"),
            "data": loaded.cfg.data.get("_target_"),
        }
    )
    (out / METRICS_FILE).write_text(strict_json(metrics))

    if images is None:
        return metrics, out
    mistakes = most_confident_mistakes(logits, labels, misclassified)
    classes = loaded.classes
    fig = figures.image_grid(
        [images[i] for i, *_ in mistakes],
        [f"#{i} {classes[t]}\n→ {classes[p]} ({c:.2f})" for i, t, p, c in mistakes],
        columns=9,
        title=f"Most confidently misclassified ({split} split): "
        "#index true → predicted (confidence)",
    )
    figures.save(fig, out / MISCLASSIFIED_FILE)
    return metrics, out


def print_summary(metrics: dict[str, Any], out: Path) -> None:
    console = Console()
    split = metrics["split"]
    console.print(f"{metrics['checkpoint']}: {split} split, {metrics['num_samples']} samples")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("acc", "precision", "recall", "f1", "auroc", "mae", "rmse", "r2", "loss"):
        if f"{split}/{name}" in metrics:
            table.add_row(f"{split}/{name}", f"{metrics[f'{split}/{name}']:.4f}")
    console.print(table)
    for name in (METRICS_FILE, CONFUSION_FILE, PER_CLASS_FILE, MISCLASSIFIED_FILE):
        if (out / name).is_file():
            console.print(f"wrote {out / name}")


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    command = parse("evaluate", argv, __doc__, run_overrides=True)
    cfg = command.cfg
    metrics, out = evaluate(
        cfg.ckpt_path,
        split=cfg.split,
        out_dir=cfg.out_dir,
        overrides=command.run_overrides,
        misclassified=cfg.misclassified,
        accelerator=cfg.accelerator,
        precision=cfg.precision,
    )
    print_summary(metrics, out)


if __name__ == "__main__":
    main()
