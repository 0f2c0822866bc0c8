"""Hyperparameter search: `cnnlab search [train overrides] [n_trials=...] [pruner=...]`.

An Optuna study over the train config, built on Optuna itself rather than a Hydra sweeper
(hydra-optuna-sweeper needs optuna<3, and a sweeper cannot stop a trial early):
- each trial composes the train config (the command's train overrides + the trial's draws),
  trains in this process into its own run dir `<study dir>/trials/<number>`, and reports the
  monitored metric after every validation epoch through optuna-integration's Lightning
  pruning callback, so the pruner can stop it early (recorded PRUNED); a trial that raises is
  recorded FAIL and the search goes on;
- the study lives in an Optuna storage (SQLite under the study dir by default). Re-running the
  command continues it; `workers=N` starts N processes that share it. Trials send heartbeats:
  one left RUNNING by a killed process is failed and queued again by the next trial that
  starts (Optuna's heartbeat + RetryHeartbeatStaleTrialCallback; RDB storages only, which is
  why the default is SQLite and not a journal file);
- after every trial the study dir gets summary.csv / summary.json (one row per trial) and
  best.json (the best trial and the `python train.py ...` command that re-runs it), each
  written atomically.

Examples:
  cnnlab search experiment=quickstart n_trials=20
  cnnlab search experiment=quickstart pruner=successive_halving workers=2 trainer.max_epochs=8
  cnnlab search experiment=quickstart space.optim.lr.high=0.3 ~space.module
  cnnlab search experiment=quickstart space=none '+space.model.width={type:int,low:16,high:64}'
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from cnnlab.checkpoints.atomic import write_atomic
from cnnlab.config import compose_run_config, config_to_save
from cnnlab.errors import CnnlabError, exits_cleanly
from cnnlab.reporting.rows import to_csv
from cnnlab.sweeps.devices import worker_environment
from cnnlab.verbs.cli import parse

if TYPE_CHECKING:
    import optuna

EXTRA = "search"
TRIALS_DIR = "trials"
SUMMARY_JSON, SUMMARY_CSV, BEST_JSON = "summary.json", "summary.csv", "best.json"
PARAM_TYPES = ("float", "int", "categorical")
DIRECTIONS = ("maximize", "minimize")
# Finished trials: what n_trials counts.
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def require_optuna() -> None:
    """One line naming the extra when Optuna (or its Lightning callback) is not installed."""
    try:
        import optuna  # noqa: F401
        import optuna_integration  # noqa: F401
    except ImportError as err:
        raise CnnlabError(
            f"cnnlab search needs the '{EXTRA}' extra ({err.name} is missing): "
            f"pip install 'cnnlab[{EXTRA}]'"
        ) from None


# ----------------------------------------------------------------------------- the space


@dataclass(frozen=True)
class Param:
    """One searched train config key and how Optuna draws it."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


def _param(key: str, spec: dict[str, Any]) -> Param:
    where = f"space.{key}"
    unknown = set(spec) - {"type", "low", "high", "log", "step", "choices"}
    if unknown:
        raise CnnlabError(
            f"{where}: unknown field {sorted(unknown)[0]!r}; fields: type, low, high, log, "
            "step (float, int), choices (categorical)"
        )
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise CnnlabError(f"{where}.type must be one of {', '.join(PARAM_TYPES)} (got {kind!r})")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise CnnlabError(f"{where}.choices must be a non-empty list, e.g. [64, 128]")
        if any(isinstance(c, (list, dict)) for c in choices):
            raise CnnlabError(f"{where}.choices: each choice must be a number, string or bool")
        return Param(key, kind, choices=tuple(choices))
    low, high, step, log = spec.get("low"), spec.get("high"), spec.get("step"), spec.get("log")
    numbers = (low, high) + ((step,) if step is not None else ())
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
        raise CnnlabError(f"{where}: low and high (and step) must be numbers (got {low}, {high})")
    if not low < high:
        raise CnnlabError(f"{where}: low must be < high (got {low}, {high})")
    if log and low <= 0:
        raise CnnlabError(f"{where}: log: true needs low > 0 (got {low})")
    if log and step is not None:
        raise CnnlabError(f"{where}: step and log: true do not go together")
    if kind == "int" and not all(float(v).is_integer() for v in numbers):
        raise CnnlabError(f"{where}: type int needs whole low/high/step (got {low}, {high})")
    return Param(key, kind, float(low), float(high), bool(log), step)


def parse_space(space: Any, prefix: str = "") -> list[Param]:
    """The nested `space` node -> one Param per leaf (a mapping that has a `type`)."""
    if not isinstance(space, dict):
        raise CnnlabError(
            f"space.{prefix.rstrip('.') or '<root>'} must be a mapping, e.g. "
            "space.optim.lr={type:float,low:1e-4,high:0.1,log:true}"
        )
    params: list[Param] = []
    for name, node in space.items():
        key = f"{prefix}{name}"
        if isinstance(node, dict) and "type" in node:
            params.append(_param(key, node))
        else:
            params.extend(parse_space(node, f"{key}."))
    return params


def check_space(params: Sequence[Param], train_cfg: DictConfig) -> None:
    """Every searched key names a value of the train config, or one of its groups."""
    if not params:
        raise CnnlabError(
            "space is empty: name what to search, e.g. "
            "+space.optim.lr={type:float,low:1e-4,high:0.1,log:true}"
        )
    groups = set(train_cfg.hydra.runtime.choices)
    missing = object()
    for param in params:
        found = OmegaConf.select(train_cfg, param.key, default=missing)
        if found is missing and param.key not in groups:
            raise CnnlabError(
                f"space.{param.key}: the train config has no key {param.key} "
                "(search keys are train config keys such as optim.lr, or groups such as optim)"
            )
        if OmegaConf.is_config(found) and param.key not in groups:
            raise CnnlabError(f"space.{param.key}: {param.key} is a config node, not a value")


PLAIN = re.compile(r"^[A-Za-z_][\w.\-/]*$")


def override_text(key: str, value: Any) -> str:
    """`key=value` in Hydra's override grammar (quoted where a string needs it)."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, (int, float)):
        text = repr(value)
    elif PLAIN.match(str(value)) and str(value).lower() not in ("true", "false", "null"):
        text = str(value)
    else:
        text = "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{key}={text}"


# ----------------------------------------------------------------------------- study


@dataclass
class Settings:
    """What one search process needs, from the composed search and train configs."""

    search: DictConfig
    train_overrides: list[str]
    params: list[Param]
    study_name: str
    study_dir: Path
    storage_url: str
    monitor: str
    worker: int


def refuse_multi_process_trials(train_cfg: DictConfig) -> None:
    """A trial trains in this process: DDP would start this whole search again per rank."""
    strategy = str(OmegaConf.select(train_cfg, "trainer.strategy", default="auto") or "auto")
    devices = OmegaConf.select(train_cfg, "trainer.devices", default=1)
    several = (isinstance(devices, int) and devices > 1) or (
        OmegaConf.is_list(devices) and len(devices) > 1
    )
    if "ddp" in strategy or several:
        raise CnnlabError(
            "cnnlab search trains each trial in one process on one device: use workers=N for "
            "trials in parallel (one GPU each), not trainer=ddp or trainer.devices>1"
        )


def settings_of(search: DictConfig, train_overrides: list[str]) -> Settings:
    """Check the whole command (search keys, space, train overrides) before anything is written."""
    if search.direction not in DIRECTIONS:
        raise CnnlabError(f"direction must be maximize or minimize (got {search.direction})")
    for key in ("n_trials", "workers", "heartbeat_interval", "grace_period"):
        value = search[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CnnlabError(f"{key} must be an integer >= 1 (got {value!r})")
    if search.max_retry is not None and (
        not isinstance(search.max_retry, int) or search.max_retry < 0
    ):
        raise CnnlabError(f"max_retry must be an integer >= 0 (got {search.max_retry!r})")
    train_cfg = compose_run_config(train_overrides, "/nonexistent/cnnlab-search-check")
    from cnnlab.training.validation import validate_config

    validate_config(train_cfg)
    refuse_multi_process_trials(train_cfg)
    space = search.get("space")
    params = parse_space(OmegaConf.to_container(space, resolve=True) if space is not None else {})
    check_space(params, train_cfg)
    choices = train_cfg.hydra.runtime.choices
    name = search.study_name or f"{train_cfg.task_name}-{choices.data}-{choices.model}"
    study_dir = Path(search.dir or Path(train_cfg.paths.log_dir) / "search" / name).expanduser()
    study_dir = study_dir.resolve()
    storage = search.storage or f"sqlite:///{study_dir / 'optuna.sqlite'}"
    monitor = search.monitor or OmegaConf.select(
        train_cfg, "callbacks.model_checkpoint.monitor", default="val/acc"
    )
    return Settings(
        search=search,
        train_overrides=train_overrides,
        params=params,
        study_name=str(name),
        study_dir=study_dir,
        storage_url=str(storage),
        monitor=str(monitor),
        worker=int(search.worker or 0),
    )


def open_storage(settings: Settings) -> optuna.storages.RDBStorage:
    """The RDB storage with heartbeats; a stale trial is failed and queued `max_retry` times."""
    import optuna
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    search = settings.search
    url = settings.storage_url
    engine: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # Workers take turns writing; wait for the lock instead of failing ("database is locked").
        engine = {"connect_args": {"timeout": 120}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=search.heartbeat_interval,
                grace_period=search.grace_period,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=search.max_retry
                ),
            )
        except Exception as err:  # bad URL, missing driver, unreadable file
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CnnlabError(f"storage={url}: cannot open it ({first})") from None


def open_study(settings: Settings, storage: Any) -> optuna.Study:
    """Create the study or load it (same name, same storage); the sampler and pruner are this
    process's (Optuna keeps no sampler state in the storage)."""
    import optuna

    search = settings.search
    seed = search.sampler.get("seed")
    try:
        existing = optuna.load_study(study_name=settings.study_name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None and existing.direction.name.lower() != search.direction:
        raise CnnlabError(
            f"study {settings.study_name} in {settings.storage_url} is "
            f"{existing.direction.name.lower()}d, not {search.direction}d; "
            "keep its direction or pick another study_name"
        )
    started = len(existing.trials) if existing is not None else 0
    sampler_kwargs = {"seed": seed + settings.worker + started} if seed is not None else {}
    sampler = hydra.utils.instantiate(search.sampler, **sampler_kwargs)
    pruner = hydra.utils.instantiate(search.pruner)
    return optuna.create_study(
        study_name=settings.study_name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction=search.direction,
        load_if_exists=True,
    )


def finished(study: optuna.Study) -> int:
    return sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False))


# ----------------------------------------------------------------------------- trials


def write_run_files(cfg: DictConfig, run_dir: Path, overrides: Sequence[str]) -> None:
    """What train.py's Hydra writes into a run dir (`.hydra/`), so that `cnnlab report`,
    `evaluate` and `export` read a trial's run dir like any other."""
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(config_to_save(cfg)), hydra_dir / "config.yaml")
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
    OmegaConf.save(
        OmegaConf.create({"hydra": {"runtime": {"choices": choices}}}), hydra_dir / "hydra.yaml"
    )
    OmegaConf.save(OmegaConf.create(list(overrides)), hydra_dir / "overrides.yaml")


def train_command(overrides: Sequence[str]) -> str:
    return " ".join(["python train.py", *(shlex.quote(o) for o in overrides)])


class Objective:
    """One trial: draw, compose, train with the pruning callback, return the best value."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, trial: optuna.Trial) -> float:
        from optuna_integration import PyTorchLightningPruningCallback

        from cnnlab.training.task import best_key, train

        s = self.settings
        draws = {p.key: p.suggest(trial) for p in s.params}
        overrides = [*s.train_overrides, *(override_text(k, v) for k, v in draws.items())]
        run_dir = s.study_dir / TRIALS_DIR / str(trial.number)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("worker", s.worker)
        try:
            if run_dir.exists() and any(run_dir.iterdir()):
                raise CnnlabError(f"{run_dir} already holds a run; not overwriting it")
            # Trials are chosen on validation: the test set stays unseen unless test=true.
            cfg = compose_run_config(["test=false", *overrides], run_dir)
            write_run_files(cfg, run_dir, overrides)
            metrics = train(cfg, [PyTorchLightningPruningCallback(trial, monitor=s.monitor)])
        except (CnnlabError, FileNotFoundError) as err:  # a bad draw or setting: FAIL, go on
            line = str(err) if isinstance(err, CnnlabError) else f"{err.filename}: not found"
            print(f"cnnlab: error: trial {trial.number}: {line}", file=sys.stderr, flush=True)
            trial.set_user_attr("error", line)
            return math.nan
        trial.set_user_attr("epochs", metrics.get("epochs"))
        value = metrics.get(best_key(s.monitor))
        return math.nan if value is None else float(value)


def trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "epochs_reported": len(trial.intermediate_values),
        "last_reported": (
            trial.intermediate_values[max(trial.intermediate_values)]
            if trial.intermediate_values
            else None
        ),
        "seconds": round(duration, 1) if duration is not None else None,
        "worker": trial.user_attrs.get("worker"),
        "retry_of": trial.system_attrs.get("failed_trial"),
    }
    row.update(trial.params)
    row["run_dir"] = trial.user_attrs.get("run_dir")
    row["error"] = trial.user_attrs.get("error", "")
    return row


def best_record(study: optuna.Study, settings: Settings) -> dict[str, Any] | None:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    complete = [t for t in complete if t.value is not None and not math.isnan(t.value)]
    if not complete:
        return None
    pick = max if settings.search.direction == "maximize" else min
    best = pick(complete, key=lambda t: t.value)
    overrides = best.user_attrs.get("overrides", [])
    return {
        "study": settings.study_name,
        "storage": settings.storage_url,
        "monitor": settings.monitor,
        "number": best.number,
        "value": best.value,
        "params": best.params,
        "run_dir": best.user_attrs.get("run_dir"),
        "overrides": overrides,
        "command": train_command(overrides),
    }


def write_summary(study: optuna.Study, settings: Settings) -> dict[str, Any] | None:
    """summary.json / summary.csv (every trial) and best.json, each replaced atomically."""
    rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    out = settings.study_dir

    def text(value: str) -> Any:
        return lambda handle: handle.write(value)

    write_atomic(out / SUMMARY_JSON, text(json.dumps(rows, indent=2) + "\n"), mode="w")
    write_atomic(out / SUMMARY_CSV, text(to_csv(rows)), mode="w")
    best = best_record(study, settings)
    if best is not None:
        write_atomic(out / BEST_JSON, text(json.dumps(best, indent=2) + "\n"), mode="w")
    return best


def counts(study: optuna.Study) -> str:
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    parts = [f"{states.count(s)} {s}" for s in ("complete", "pruned", "fail", "running", "waiting")]
    return ", ".join(p for p in parts if not p.startswith("0 "))


def run_trials(settings: Settings) -> optuna.Study:
    """This process's share: trials one after another until the study holds n_trials."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    storage = open_storage(settings)
    study = open_study(settings, storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # killed trials: failed (and queued) now
    n_trials = settings.search.n_trials
    if finished(study) < n_trials:
        study.optimize(
            Objective(settings),
            callbacks=[
                MaxTrialsCallback(
                    n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
                ),
                lambda study, trial: write_summary(study, settings),
            ],
            catch=(Exception,),
            gc_after_trial=True,
        )
    write_summary(study, settings)
    return study


def refuse_foreign_trials(settings: Settings) -> None:
    """A study dir whose trials/ belongs to another study (e.g. its database was deleted)."""
    import optuna

    trials = settings.study_dir / TRIALS_DIR
    if not trials.is_dir() or not any(trials.iterdir()):
        return
    try:
        known = optuna.load_study(study_name=settings.study_name, storage=settings.storage_url)
        empty = not known.trials
    except KeyError:
        empty = True
    if empty:
        raise CnnlabError(
            f"{trials} holds trials but study {settings.study_name} in {settings.storage_url} "
            "has none; pick another dir or study_name (nothing is overwritten)"
        )


def launch_workers(settings: Settings, argv: Sequence[str]) -> int:
    """Start `workers` processes of this same command (`worker=i`) and wait for them."""
    workers = settings.search.workers
    cores = os.cpu_count() or 1
    processes = []
    for worker in range(workers):
        env = worker_environment(worker)
        env.setdefault("OMP_NUM_THREADS", str(max(1, cores // workers)))
        command = [sys.executable, "-m", "cnnlab", "search", *argv, f"worker={worker}"]
        processes.append(subprocess.Popen(command, env=env))
    codes = [p.wait() for p in processes]
    return next((c for c in codes if c != 0), 0)


def print_result(study: optuna.Study, settings: Settings, seconds: float) -> None:
    best = write_summary(study, settings)
    print(
        f"study {settings.study_name}: {counts(study)} ({finished(study)} of "
        f"n_trials={settings.search.n_trials} finished) in {seconds:.0f} s"
    )
    print(f"Study dir:   {settings.study_dir}")
    print(f"Summary:     {settings.study_dir / SUMMARY_CSV}")
    if best is None:
        print("No trial completed yet.")
        return
    print(f"Best:        trial {best['number']}, {settings.monitor} {best['value']:.4f}")
    print(f"Re-run it:   {best['command']}")


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    command = parse("search", args, __doc__, run_overrides=True)
    require_optuna()
    import optuna

    started = time.perf_counter()
    overrides = [o.input_line for o in command.run_overrides]
    settings = settings_of(command.cfg, overrides)
    if command.cfg.worker is not None:  # one of the processes `workers` started
        run_trials(settings)
        return
    refuse_foreign_trials(settings)
    settings.study_dir.mkdir(parents=True, exist_ok=True)
    if settings.search.workers == 1:
        study = run_trials(settings)
    else:
        # The study (and its tables) exists before the workers race to open it.
        open_study(settings, open_storage(settings))
        code = launch_workers(settings, args)
        study = optuna.load_study(study_name=settings.study_name, storage=settings.storage_url)
        if code:
            print_result(study, settings, time.perf_counter() - started)
            raise CnnlabError(f"a worker exited with status {code}; re-run to continue")
    print_result(study, settings, time.perf_counter() - started)


if __name__ == "__main__":
    main()
