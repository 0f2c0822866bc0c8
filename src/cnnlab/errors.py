"""User-facing errors: one clear line naming the thing and the fix, then a non-zero exit.

Exit codes (docs/reliability.md lists every case):
    0    success (also: resume=auto on a run that already finished)
    1    a bug: an unexpected exception, with its traceback
    2    bad input or unusable output: a config value, a missing or corrupt file, a run dir
         that is taken or not writable, a full disk (EXIT_USAGE)
    3    training diverged: a non-finite training loss (EXIT_NON_FINITE)
    128+N  interrupted by signal N (130 Ctrl+C, 143 SIGTERM) after saving what resumes
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

EXIT_USAGE = 2
EXIT_NON_FINITE = 3
# OSErrors that mean "this output cannot be written here" (a full disk, a read-only or
# missing folder): the user's to fix, so one line, not a traceback.
OUTPUT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOTDIR,
        errno.EISDIR,
    }
)

F = TypeVar("F", bound=Callable[..., Any])


class CnnlabError(Exception):
    """A problem the user can fix (bad value, missing or corrupt data, clashing run dir).

    Raised instead of letting a library traceback surface, so the message can name the
    offending path or config key and the fix in a single line.
    """

    exit_code = EXIT_USAGE


class NonFiniteLoss(CnnlabError):
    """Training diverged (NaN/inf loss): not bad input, so it has its own exit code."""

    exit_code = EXIT_NON_FINITE


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one `cnnlab: error:` line on stderr and exit with `code` (EXIT_USAGE)."""
    print(f"cnnlab: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def os_error_in(err: BaseException) -> OSError | None:
    """The OSError that `err` is or was raised from (torch wraps a failed write in a
    RuntimeError whose message is about zip offsets, not the disk)."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError) and cause.errno is not None:
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def output_error(err: BaseException, path: object = None) -> CnnlabError | None:
    """One line for an output that cannot be written (disk full, read-only, not a folder),
    naming the path and the cause; None when `err` is something else."""
    found = os_error_in(err)
    if found is None or found.errno not in OUTPUT_ERRNOS:
        return None
    where = found.filename or path or "the run's output"
    reason = found.strerror or errno.errorcode.get(found.errno or 0, "OSError")
    fix = (
        "free space on that disk, or write the run elsewhere (hydra.run.dir=<dir>)"
        if found.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        else "make it writable, or write the run elsewhere (hydra.run.dir=<dir>)"
    )
    return CnnlabError(f"cannot write {where}: {reason}; {fix}")


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
            fail(str(err), err.exit_code)

    return wrapper  # type: ignore[return-value]
