"""User-facing errors: one clear line naming the thing and the fix, then a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., Any])


class CnnlabError(Exception):
    """A problem the user can fix (bad value, missing or corrupt data, clashing run dir).

    Raised instead of letting a library traceback surface, so the message can name the
    offending path or config key and the fix in a single line.
    """


def fail(message: str) -> None:
    """Print one `cnnlab: error:` line on stderr and exit with EXIT_USAGE."""
    print(f"cnnlab: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USAGE)


def in_multirun() -> bool:
    """True inside one job of a Hydra multirun (sweep, Optuna search)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def exits_cleanly(func: F) -> F:
    """Turn a CnnlabError escaping an entry point into `fail(...)` (one line, exit 2).

    Inside a multirun the line is printed and the error re-raised instead: SystemExit would
    end the whole sweep, while an exception lets Hydra record this job as failed (summary,
    Optuna) and run the others; the sweep then exits non-zero.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CnnlabError as err:
            if in_multirun():
                print(f"cnnlab: error: {err}", file=sys.stderr, flush=True)
                raise
            fail(str(err))

    return wrapper  # type: ignore[return-value]
