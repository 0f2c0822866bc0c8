"""Classify image files with a checkpoint: `cnnlab predict ckpt_path=<ckpt> inputs=<x>`.

`inputs` is one image, a directory (every file in it) or a glob. Any size or mode is read
with Pillow, converted to the model's channels (grey or RGB) and fitted to its input size
(`resize=pad|crop|stretch`). Files Pillow cannot read are reported by name and skipped;
the rest are still predicted. Prints the top-k classes per image and writes
predictions.csv and predictions.json.
Examples:
  cnnlab predict ckpt_path=<run>/checkpoints/last.ckpt inputs=photos/
  cnnlab predict ckpt_path=<ckpt> inputs='photos/*.jpg' top_k=5 out_dir=/tmp/pred
"""

from __future__ import annotations

import csv
import glob
import json
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from rich.console import Console
from rich.table import Table

from cnnlab.errors import CnnlabError, exits_cleanly
from cnnlab.verbs.cli import parse
from cnnlab.verbs.runs import LoadedRun, load_run, output_dir

RESIZE_MODES = ("pad", "crop", "stretch")
CSV_FILE, JSON_FILE = "predictions.csv", "predictions.json"


@dataclass
class Prediction:
    file: str
    top: list[tuple[str, float]]  # (class, probability), most probable first


def expand_inputs(inputs: str) -> list[Path]:
    """The files named by `inputs`: itself, the files of a directory, or a glob's matches."""
    path = Path(inputs).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise CnnlabError(f"inputs={inputs}: the directory holds no files")
        return files
    matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if not matches:
        raise CnnlabError(f"inputs={inputs}: no such file or directory, and no file matches it")
    return matches


def read_image(path: Path, channels: int, size: int, resize: str) -> torch.Tensor:
    """One file -> uint8 C x size x size, as the model's training images are stored.

    EXIF orientation is applied first (phone photos); transparency is dropped.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()  # decode now: a truncated file fails here, not later
    image = image.convert("L" if channels == 1 else "RGB")
    target = (size, size)
    if image.size != target:
        if resize == "pad":
            image = ImageOps.pad(image, target, method=Image.Resampling.BICUBIC, color=0)
        elif resize == "crop":
            image = ImageOps.fit(image, target, method=Image.Resampling.BICUBIC)
        else:
            image = image.resize(target, Image.Resampling.BICUBIC)
    array = np.array(image, dtype=np.uint8)  # a writable copy for torch
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def predict_files(
    loaded: LoadedRun,
    files: Sequence[Path],
    top_k: int = 3,
    resize: str = "pad",
    batch_size: int = 256,
) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """(predictions, skipped (file, reason)) for the files, in their order."""
    if resize not in RESIZE_MODES:
        raise CnnlabError(f"resize={resize} is not one of {', '.join(RESIZE_MODES)}")
    if top_k < 1:
        raise CnnlabError(f"top_k must be >= 1 (got {top_k}); e.g. top_k=3")
    channels, size, _ = loaded.input_shape
    images: list[torch.Tensor] = []
    readable: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for path in files:
        try:
            images.append(read_image(path, channels, size, resize))
            readable.append(path)
        except (
            UnidentifiedImageError,
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombWarning,
            Image.DecompressionBombError,
        ) as err:
            skipped.append((str(path), f"{type(err).__name__}: {err}".splitlines()[0][:160]))
    if not images:
        return [], skipped
    probs = loaded.logits(torch.stack(images), batch_size).softmax(dim=1)
    k = min(top_k, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    classes = loaded.classes
    predictions = [
        Prediction(str(path), [(classes[int(i)], float(p)) for p, i in zip(v, ix, strict=True)])
        for path, v, ix in zip(readable, values, indices, strict=True)
    ]
    return predictions, skipped


def write_outputs(
    out: Path, predictions: list[Prediction], skipped: list[tuple[str, str]], meta: dict[str, Any]
) -> None:
    k = max((len(p.top) for p in predictions), default=0)
    with open(out / CSV_FILE, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["file"]
            + [f"{field}_{r}" for r in range(1, k + 1) for field in ("class", "probability")]
        )
        for p in predictions:
            writer.writerow([p.file] + [x for c, prob in p.top for x in (c, f"{prob:.6f}")])
    document = {
        **meta,
        "predictions": [
            {"file": p.file, "top": [{"class": c, "probability": prob} for c, prob in p.top]}
            for p in predictions
        ],
        "skipped": [{"file": f, "reason": reason} for f, reason in skipped],
    }
    (out / JSON_FILE).write_text(json.dumps(document, indent=2) + "\n")


def print_table(predictions: list[Prediction], console: Console) -> None:
    k = max((len(p.top) for p in predictions), default=0)
    table = Table(title="Predictions")
    table.add_column("file", overflow="fold")
    for r in range(1, k + 1):
        table.add_column(f"#{r}", justify="left")
    for p in predictions:
        table.add_row(Path(p.file).name, *(f"{c} [dim]{prob:.3f}[/dim]" for c, prob in p.top))
    console.print(table)


def default_out(loaded: LoadedRun, inputs: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(inputs.rstrip("/*")).name or "inputs") or "inputs"
    parent = loaded.run_dir or loaded.ckpt_path.parent
    return parent / "predict" / name


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    command = parse("predict", argv, __doc__, run_overrides=True)
    cfg = command.cfg
    files = expand_inputs(str(cfg.inputs))
    loaded = load_run(cfg.ckpt_path, command.run_overrides)
    loaded.require_images("predict")
    predictions, skipped = predict_files(
        loaded, files, top_k=cfg.top_k, resize=cfg.resize, batch_size=cfg.batch_size
    )
    for file, reason in skipped:
        print(f"cnnlab: skipped {file}: not a readable image ({reason})", file=sys.stderr)
    if not predictions:
        raise CnnlabError(
            f"inputs={cfg.inputs}: none of the {len(files)} files is a readable image"
        )
    out = output_dir(cfg.out_dir, default_out(loaded, str(cfg.inputs)))
    meta = {"checkpoint": str(loaded.ckpt_path), "inputs": str(cfg.inputs), "resize": cfg.resize}
    write_outputs(out, predictions, skipped, meta)
    console = Console()
    print_table(predictions, console)
    console.print(f"{len(predictions)} predicted, {len(skipped)} skipped")
    console.print(f"wrote {out / CSV_FILE}\nwrote {out / JSON_FILE}")


if __name__ == "__main__":
    main()
