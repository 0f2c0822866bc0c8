"""Running the study's parts: checks before anything trains, one multirun process per part,
and the study's record of its own invocations (`<out_dir>/study.json`).

Each part runs as `python -m cnnlab train -m ... resume=auto` in a child process: a crash in
one part cannot take the study down, and each multirun starts with fresh global state. The
child dies with the study (Linux: the parent-death signal is SIGTERM, on which a run saves
its last.ckpt), so a killed study never leaves a run writing into its folders behind it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import hydra
import torch

import cnnlab
from cnnlab.checkpoints.atomic import write_atomic
from cnnlab.config import compose_config
from cnnlab.errors import CnnlabError
from cnnlab.machine import cpu_flags, cpu_has_bf16, cpu_kind, cpu_model
from cnnlab.paths import REPO_ROOT
from cnnlab.study.plan import Part
from cnnlab.training.build import build, resolve_precision
from cnnlab.training.validation import validate_config

RECORD_FILE = "study.json"
# The package the children must import: this one, wherever it is installed.
SOURCE_ROOT = Path(cnnlab.__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- machine


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """The machine the runs train on, as the report header names it."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads or torch.get_num_threads(),
        "cpu_kind": cpu_kind(cpu_flags()),
        "native_bf16": cpu_has_bf16(),
        "gpu": gpu,
        "precision": resolve_precision("auto", "auto"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    """HEAD of the repository the configs come from, `-dirty` with uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


# ----------------------------------------------------------------------------- checks


def preflight(parts: Sequence[Part], data_dir: Path) -> None:
    """Compose and check every planned run, and find every dataset's files, before anything
    trains: a typo in an option or a missing dataset is one line now, not a failed run an
    hour later."""
    for dataset in dict.fromkeys(job.dataset for part in parts for job in part.jobs):
        data = compose_config("train", [f"data={dataset}"]).data
        try:
            hydra.utils.get_class(str(data._target_)).find_files(
                Path(data_dir), False, str(data.mirror)
            )
        except CnnlabError as err:
            raise CnnlabError(
                f"data_dir={data_dir} lacks {dataset}: {err} (fetch it: cnnlab fetch {dataset})"
            ) from None
    seen: set[tuple[str, ...]] = set()
    augments: set[str] = set()
    for part in parts:
        for job in part.jobs:
            key = tuple(o for o in job.overrides if not o.startswith("seed="))
            if key in seen:
                continue
            seen.add(key)
            try:
                cfg = compose_config("train", [*job.overrides])
                validate_config(cfg)
                # An augmentation may need an optional package (albumentations): built once.
                if str(job.value("augment")) not in augments:
                    augments.add(str(job.value("augment")))
                    build(cfg.augment, f"augment={job.value('augment')}")
            except CnnlabError as err:
                raise CnnlabError(f"{part.name}: {err}") from None


# ----------------------------------------------------------------------------- record


def read_record(out_dir: Path) -> dict[str, Any]:
    path = out_dir / RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"invocations": []}
    return record if isinstance(record.get("invocations"), list) else {"invocations": []}


def write_record(out_dir: Path, record: dict[str, Any]) -> None:
    """Atomic: a kill while writing leaves the previous record."""
    text = json.dumps(record, indent=2) + "\n"
    write_atomic(out_dir / RECORD_FILE, lambda handle: handle.write(text), mode="w")


class Invocation:
    """This call of the study in study.json: when, what, where, and each part's wall time,
    saved after every part so a killed study keeps what it finished."""

    def __init__(self, out_dir: Path, argv: Sequence[str], threads: int | None = None) -> None:
        self.out_dir = out_dir
        self.record = read_record(out_dir)
        self.entry: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "argv": list(argv),
            "commit": git_commit(),
            "machine": machine_info(threads),
            "parts": {},
            "finished": None,
        }
        self.record["invocations"].append(self.entry)
        self.save()

    def save(self) -> None:
        write_record(self.out_dir, self.record)

    def part_done(self, name: str, seconds: float, returncode: int, jobs_trained: int) -> None:
        self.entry["parts"][name] = {
            "seconds": round(seconds, 1),
            "returncode": returncode,
            "jobs_trained": jobs_trained,
        }
        self.save()

    def finish(self) -> None:
        self.entry["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.save()


@contextlib.contextmanager
def exclusive(out_dir: Path) -> Iterator[None]:
    """One study at a time per out_dir: two would train the same runs into the same folders.
    The lock goes with the process, however it ends."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: unguarded
        yield
        return
    with open(out_dir / ".study.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CnnlabError(
                f"another cnnlab study is running on out_dir={out_dir}; wait for it, or stop it"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- launching


def part_command(part: Part, sweep_dir: Path, data_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cnnlab",
        "train",
        "-m",
        *part.arguments(),
        f"hydra.sweep.dir={sweep_dir}",
        f"paths.data_dir={data_dir}",
        "resume=auto",
    ]


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM this child when the study dies, however it dies (SIGKILL too)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@contextlib.contextmanager
def forwarding_sigterm(process: subprocess.Popen[bytes]) -> Iterator[list[int]]:
    """SIGTERM to the study is passed to the running part (which saves its last.ckpt)."""
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def launch(command: list[str], threads: int | None = None, grace_seconds: float = 120) -> int:
    """Run one part's multirun in a child process; its output goes to the study's own.

    Ctrl+C reaches the child too (same process group): the study waits for it to save and
    exit, then stops. SIGTERM is forwarded likewise.
    """
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.pop("HYDRA_FULL_ERROR", None)
    linux = sys.platform.startswith("linux")
    process = subprocess.Popen(command, env=env, preexec_fn=die_with_parent if linux else None)
    with forwarding_sigterm(process) as received:
        try:
            returncode = process.wait()
        except KeyboardInterrupt:
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise
    if received:
        raise SystemExit(128 + int(signal.SIGTERM))
    return returncode
