"""The study: `cnnlab study [key=value ...]` (also `make study`).

Trains every zoo model on CIFAR-10 and Fashion-MNIST at one fixed budget, then three
ablations on one model (optimizer, augmentation, learning rate, over several seeds), each
part a resumable Hydra multirun under out_dir; then writes the report (README.md + PNGs)
into report_dir, replacing the previous one, and a self-contained report.html into out_dir.
Running the same command again resumes where a killed study stopped. Settings, the budget
rule and the estimate's per-image costs: conf/study.yaml.
Examples:
  cnnlab study dry_run=true                      # the plan, what is done, the time it takes
  cnnlab study                                   # run (or resume) everything, then report
  cnnlab study parts=[compare] compare.models=[simple_cnn,alexnet] budget.epochs=1
  cnnlab study parts=[]                          # rebuild the report from the runs
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from cnnlab.checkpoints.atomic import write_atomic
from cnnlab.errors import CnnlabError, exits_cleanly
from cnnlab.machine import cpu_flags, cpu_has_bf16, cpu_kind
from cnnlab.reporting.markdown import table
from cnnlab.study.plan import Part, job_estimate, make_plan, named_parts, selected
from cnnlab.study.report import MARKER, README, build_study_report
from cnnlab.study.run import (
    Invocation,
    exclusive,
    launch,
    part_command,
    preflight,
    read_record,
)
from cnnlab.verbs.cli import parse
from cnnlab.verbs.report import duration, to_html

HTML_FILE = "report.html"


def counts(states: Sequence[str]) -> dict[str, int]:
    return {s: sum(1 for x in states if x == s) for s in ("done", "started", "todo")}


# ----------------------------------------------------------------------------- plan


def print_plan(cfg: DictConfig, parts: Sequence[Part], kinds: Sequence[str], out_dir: Path) -> None:
    """The planned parts, what is done, and the estimated wall time of what is left."""
    native = cpu_has_bf16()
    estimate = cfg.estimate.copy()
    if cfg.threads == 1:  # one thread: the model's compute is not shared
        estimate.thread_speedup = 1.0
    rows, left, left_other = [], 0.0, 0.0
    for part in selected(parts, kinds):
        states = part.states(out_dir)
        n = counts(states)
        todo = [job for job, state in zip(part.jobs, states, strict=True) if state != "done"]
        here = sum(job_estimate(j, cfg.budget, estimate, not native).wall_seconds for j in todo)
        other = sum(job_estimate(j, cfg.budget, estimate, native).wall_seconds for j in todo)
        if todo:
            here += cfg.estimate.process_seconds
            other += cfg.estimate.process_seconds
        left, left_other = left + here, left_other + other
        rows.append(
            [
                part.name,
                len(states),
                n["done"],
                n["started"],
                n["todo"],
                duration(here) if todo else "—",
            ]
        )
    print(
        table(
            ["part", "runs", "done", "started", "to train", "est. time"],
            rows,
            right=(1, 2, 3, 4, 5),
        )
    )
    kind = cpu_kind(cpu_flags())
    other = (
        "a CPU without native bf16 (fp32, e.g. AVX2 only)"
        if native
        else ("a CPU with native bf16 (bf16-mixed)")
    )
    print(
        f"\nestimated wall time left on an idle machine like this one ({kind}): "
        f"{duration(left)}; on {other}: {duration(left_other)}"
    )
    print(f"runs: {out_dir}\nreport: {Path(cfg.report_dir).expanduser()}")
    for part in selected(parts, kinds):
        print(
            f"\n{part.name}:\n  "
            + " ".join(part_command(part, part.sweep_dir(out_dir), Path(cfg.data_dir))[2:])
        )


# ----------------------------------------------------------------------------- report dir


def check_report_dir(report_dir: Path, out_dir: Path) -> None:
    """The report folder is replaced whole: refuse one that holds anything else."""
    if report_dir == out_dir or out_dir.is_relative_to(report_dir):
        raise CnnlabError(
            f"report_dir={report_dir} would hold the runs of out_dir={out_dir}; it is "
            "replaced whole on each report: pick a folder of its own"
        )
    if not report_dir.exists():
        return
    if not report_dir.is_dir():
        raise CnnlabError(f"report_dir={report_dir} is a file; pick a folder")
    files = [p for p in report_dir.iterdir()]
    readme = report_dir / README
    ours = readme.is_file() and readme.read_text(errors="replace").startswith(MARKER)
    foreign = [p.name for p in files if not (p.name == README or p.suffix == ".png")]
    if files and (not ours or foreign):
        example = foreign[0] if foreign else README
        raise CnnlabError(
            f"report_dir={report_dir} holds files the study did not write (e.g. {example}); "
            "the study replaces that folder whole: pick another report_dir, or empty it"
        )


def replace_dir(staging: Path, target: Path) -> None:
    """Swap the staged report in: old folder aside, new one in place, old one removed.
    A kill in between leaves the old report beside the target, removed next time."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def write_report(cfg: DictConfig, parts: Sequence[Part], out_dir: Path, report_dir: Path) -> None:
    staging = report_dir.with_name(f".{report_dir.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        markdown = build_study_report(
            cfg, parts, out_dir, staging, report_dir, read_record(out_dir)
        )
        (staging / README).write_text(markdown)
        page = to_html(markdown, staging, str(cfg.title))
        write_atomic(out_dir / HTML_FILE, lambda handle: handle.write(page), mode="w")
        replace_dir(staging, report_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(p.stat().st_size for p in report_dir.iterdir())
    print(
        f"wrote {report_dir / README} ({len(list(report_dir.iterdir()))} files, "
        f"{size / 1e6:.1f} MB)\nwrote {out_dir / HTML_FILE}"
    )


# ----------------------------------------------------------------------------- main


def run_parts(
    parts: Sequence[Part], out_dir: Path, data_dir: Path, argv: list[str], threads: int | None
) -> list[str]:
    """Launch every part not yet done, in order; return the parts whose multirun failed."""
    invocation: Invocation | None = None
    failed = []
    for i, part in enumerate(parts, 1):
        n = counts(part.states(out_dir))
        head = f"cnnlab study [{i}/{len(parts)}] {part.name}:"
        if n["done"] == len(part.jobs):
            print(f"{head} {n['done']} run(s) done, nothing to train", flush=True)
            continue
        print(
            f"{head} {n['todo']} to train, {n['started']} to continue, {n['done']} done", flush=True
        )
        if invocation is None:
            invocation = Invocation(out_dir, argv, threads)
        started = time.perf_counter()
        code = launch(part_command(part, part.sweep_dir(out_dir), data_dir), threads)
        trained = n["todo"] + n["started"] - counts(part.states(out_dir))["todo"]
        invocation.part_done(part.name, time.perf_counter() - started, code, trained)
        if code != 0:
            failed.append(part.name)
    if invocation is not None:
        invocation.finish()
    return failed


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    cfg = parse("study", args, __doc__).cfg
    parts = make_plan(cfg)
    kinds = named_parts(cfg)
    threads = cfg.threads
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise CnnlabError(f"threads must be a whole number >= 1 or null (got {threads!r})")
    out_dir = Path(cfg.out_dir).expanduser().resolve()
    report_dir = Path(cfg.report_dir).expanduser().resolve()
    data_dir = Path(cfg.data_dir).expanduser().resolve()
    for part in parts:
        part.states(out_dir)  # a folder of other settings is refused before anything runs
    check_report_dir(report_dir, out_dir)
    if cfg.dry_run:
        print_plan(cfg, parts, kinds, out_dir)
        return
    to_run = [p for p in selected(parts, kinds) if not p.done(out_dir)]
    if to_run:
        preflight(to_run, data_dir)
    if not to_run and not any(j.run_dir(out_dir).is_dir() for p in parts for j in p.jobs):
        raise CnnlabError(
            f"out_dir={out_dir} holds no run of this study yet: run `cnnlab study` (without "
            "parts=[]) first"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(out_dir):
        failed = run_parts(selected(parts, kinds), out_dir, data_dir, args, threads)
        write_report(cfg, parts, out_dir, report_dir)
    if failed:
        raise CnnlabError(
            f"some runs failed in {', '.join(failed)} (the report marks them); fix the cause "
            "and run the same command again: finished runs are kept"
        )


if __name__ == "__main__":
    main()
