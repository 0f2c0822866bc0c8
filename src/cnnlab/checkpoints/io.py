"""Checkpoint files: atomic writes, the one reader, and the check that one fits a model.

Every checkpoint in the suite is written by `AtomicCheckpointIO` and read by
`read_checkpoint`, so a torn, foreign or mismatched file is always one line naming it.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cnnlab.checkpoints.atomic import write_atomic
from cnnlab.errors import CnnlabError

LAST = "last.ckpt"
ZIP_MAGIC = b"PK\x03\x04"  # every file torch.save writes is a zip archive


def _is_local(path: str | os.PathLike) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Atomic checkpoint files: write a temp file beside the target, fsync, then `os.replace`.

    A kill at any moment leaves either the previous complete file or the new complete file
    under the final name, never a truncated `last.ckpt`. (Lightning's own save stages the
    bytes in the system temp dir and `shutil.move`s them, which degrades to a non-atomic copy
    when /tmp is another filesystem, and never fsyncs.) Remote (fsspec) paths keep
    Lightning's behaviour.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(str(path).removeprefix("file://"))
        write_atomic(
            target,
            lambda handle: torch.save(checkpoint, handle),
            fault=("during_checkpoint_write", checkpoint.get("global_step")),
        )

    def load_checkpoint(
        self,
        path: Any,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        return read_checkpoint(path, map_location=map_location, weights_only=weights_only)


def read_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu", weights_only: bool | None = None
) -> dict[str, Any]:
    """Load a checkpoint; a missing, truncated or foreign file is one CnnlabError naming it.

    The one reader of checkpoint files: resume, evaluation, export and reports all use it.
    """
    if _is_local(path):
        local = Path(str(path).removeprefix("file://")).expanduser()
        if local.is_dir():
            raise CnnlabError(f"{path} is a directory; pass a .ckpt file inside it")
        if not local.is_file():
            raise CnnlabError(
                f"{path}: no such checkpoint file; pass a .ckpt from <run>/checkpoints/"
            )
        path = local
    try:
        checkpoint = TorchCheckpointIO.load_checkpoint(
            TorchCheckpointIO(), path, map_location=map_location, weights_only=weights_only
        )
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as err:
        raise CnnlabError(
            f"{path}: corrupt or unreadable checkpoint ({_load_failure(path, err)}); "
            "use another checkpoint of the run (<run>/checkpoints/), or start a fresh run dir"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CnnlabError(
            f"{path}: not a Lightning checkpoint (no state_dict); pass a .ckpt written by train.py"
        )
    return checkpoint


def _load_failure(path: str | os.PathLike, err: BaseException) -> str:
    """torch's reason in a few words. Its advice about `weights_only` is left out: for a
    file that is not a checkpoint, loading it with fewer safety checks is never the fix."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        head = b""
    if head and head != ZIP_MAGIC:
        return "not a PyTorch checkpoint: torch.save writes a zip archive, this is none"
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if "weights_only" in first or "Weights only" in first:
        return "it holds objects that a safe load refuses: not written by train.py?"
    return first[:160]


def check_resumable(
    path: str | os.PathLike, checkpoint: dict[str, Any], module: L.LightningModule
) -> None:
    """One-line refusal of a checkpoint that does not fit `module` or cannot resume training."""
    if "optimizer_states" not in checkpoint or "loops" not in checkpoint:
        raise CnnlabError(
            f"{path}: weights-only checkpoint, it cannot resume training (no optimizer/loop state)"
        )
    expected = module.state_dict()
    found: dict[str, Any] = checkpoint["state_dict"]
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    misshaped = [
        k
        for k in expected
        if k in found and tuple(getattr(found[k], "shape", ())) != tuple(expected[k].shape)
    ]
    if missing or unexpected or misshaped:
        example = (misshaped or missing or unexpected)[0]
        written_for = (checkpoint.get("cnnlab_config") or {}).get("model", {}).get("_target_")
        origin = f"; it was written for {written_for}" if written_for else ""
        raise CnnlabError(
            f"{path}: checkpoint does not fit this model ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(misshaped)} mis-shaped tensors, e.g. {example})"
            f"{origin}; use the model/data config of the run that wrote it"
        )
