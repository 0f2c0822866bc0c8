"""Atomic file replacement: a reader (or a kill) never sees a half-written file.

Write to a temp file beside the target, fsync, `os.replace` over the target, fsync the
folder. Used for checkpoints, metrics.json and sweep summaries, which a killed job must not
corrupt. A failed write (a full disk, a read-only folder) removes its temp file and is one
line naming the target; a kill -9 can still leave a `.<name>.*.partial` temp file, which
`remove_partial_files` clears when that run dir is next started.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cnnlab.errors import output_error
from cnnlab.faults import fault_point


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


PARTIAL_SUFFIX = ".partial"


def is_partial(path: Path) -> bool:
    """A temp file of `write_atomic` (left behind only by a kill -9 or a power cut)."""
    return path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX)


def remove_partial_files(*folders: Path) -> list[Path]:
    """Remove the temp files interrupted writes left in `folders` (not recursive)."""
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_file() and is_partial(path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


def write_atomic(
    path: Path,
    write: Callable[[IO[Any]], None],
    mode: str = "wb",
    fault: tuple[str, int | None] | None = None,
) -> None:
    """Replace `path` with what `write(handle)` writes, all or nothing.

    `fault`: the `cnnlab.faults` phase (and its n) this write stands for, between the
    fsynced temp file and the rename (inert unless CNNLAB_FAULT names it).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    except OSError as err:
        raise output_error(err, path) or err from None
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if fault is not None:
            fault_point(*fault)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, Exception) and (one_line := output_error(err, path)) is not None:
            raise one_line from None
        raise
    fsync_dir(path.parent)


def finite_or_none(value: Any) -> Any:
    """`value` with every NaN/inf float replaced by None (JSON null), at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def strict_json(value: Any) -> str:
    """Standard JSON (no NaN/Infinity tokens, which strict readers reject): non-finite -> null."""
    return json.dumps(finite_or_none(value), indent=2, allow_nan=False) + "\n"


def write_json(path: Path, value: Any, fault: tuple[str, int | None] | None = None) -> None:
    """`strict_json(value)` written atomically to `path`."""
    text = strict_json(value)
    write_atomic(path, lambda handle: handle.write(text), mode="w", fault=fault)
