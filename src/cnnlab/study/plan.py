"""What the study runs: its parts, each one Hydra multirun, and each run's overrides.

A part is one `python -m cnnlab train -m ...` sweep in its own folder under `out_dir`:
`compare/<model>` (that model on every dataset) and `ablation/<name>` (one setting against
several seeds). The overrides of every job are computed here in Hydra's own job order
(the product of the swept values in command-line order), so the study knows which job
folder holds which run without asking Hydra, and can tell a finished part (skipped), a
started one (resumed) and one whose folder holds other settings (refused).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from cnnlab.errors import CnnlabError

PART_KINDS = ("compare", "optimizer", "augment", "lr")
ABLATIONS = ("optimizer", "augment", "lr")
# Which override an ablation sweeps (besides the seed).
ABLATION_KEYS = {"optimizer": "optim", "augment": "augment", "lr": "optim.lr"}
# Overrides that say where a run goes or how it starts, not what it does.
NOT_IDENTITY = ("hydra.", "paths.", "resume")
METRICS_FILE = "metrics.json"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
TEST_IMAGES = 10_000  # both official test sets


def override_key(text: str) -> str:
    """`+trainer.max_time=...` -> `trainer.max_time`."""
    return text.split("=", 1)[0].lstrip("+~")


def parsed(overrides: Iterable[str]) -> list[Override]:
    """Hydra's reading of overrides; a malformed one is one line."""
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as err:
        raise CnnlabError(f"cannot parse an override: {str(err).splitlines()[0]}") from None


def merged(*groups: Iterable[str]) -> list[str]:
    """Overrides with later ones replacing earlier ones of the same key (a part's own
    `optim=...` replaces the recipe's), in first-seen key order."""
    by_key: dict[str, str] = {}
    for group in groups:
        for text in group:
            by_key[override_key(text)] = text
    return list(by_key.values())


def identity(overrides: Iterable[str]) -> dict[str, Any]:
    """What a run does, keyed by override, each value as Hydra reads it (so `1e-3` equals
    `0.001`, and the escaped `00\\:30` Hydra records equals `00:30`): for comparing a
    planned run with the run a folder holds."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {
        o.key_or_group: o.value() for o in parsed if not o.key_or_group.startswith(NOT_IDENTITY)
    }


def format_value(value: Any) -> str:
    """As typed in an override: 0.001, not 0.0010000000000000002; lists without spaces."""
    if isinstance(value, float):
        text = f"{value:g}"  # keeps a float a float: 1.0 (an epoch's fraction) is not 1 batch
        return text if any(c in text for c in ".eni") else f"{text}.0"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class Job:
    """One run of a part: its folder and its overrides."""

    part: Part
    number: int
    overrides: tuple[str, ...]

    def run_dir(self, out_dir: Path) -> Path:
        return self.part.sweep_dir(out_dir) / str(self.number)

    @functools.cached_property
    def settings(self) -> dict[str, Any]:
        """The job's overrides as Hydra reads them, by key."""
        return identity(self.overrides)

    def value(self, key: str) -> Any:
        return self.settings.get(key)

    @property
    def dataset(self) -> str:
        return str(self.value("data"))

    @property
    def seed(self) -> int:
        return int(self.value("seed"))

    def state(self, out_dir: Path) -> str:
        """todo (no folder yet), started (no metrics yet: resumed from its last.ckpt), done.

        A folder that holds a run of other settings is refused: re-running would report an
        old result under a new budget (resume=auto keeps finished runs as they are).
        """
        run_dir = self.run_dir(out_dir)
        saved = run_dir / OVERRIDES_FILE
        if saved.is_file():
            try:
                recorded = [str(o) for o in yaml.safe_load(saved.read_text()) or []]
            except (yaml.YAMLError, TypeError):
                recorded = []
            before, now = identity(recorded), self.settings
            differences = [
                f"{key}: {before.get(key)!r} -> {value!r}"
                for key, value in now.items()
                if before.get(key) != value
            ]
            differences += [
                f"{key}: {value!r} -> (unset)" for key, value in before.items() if key not in now
            ]
            if differences:
                raise CnnlabError(
                    f"{run_dir} holds a run of other settings ({differences[0]}"
                    f"{f' and {len(differences) - 1} more' if len(differences) > 1 else ''}); "
                    "use another out_dir, or delete that folder to train it again"
                )
        if (run_dir / METRICS_FILE).is_file():
            return "done"
        return "started" if run_dir.is_dir() else "todo"


@dataclass(frozen=True)
class Part:
    """One multirun: overrides every job shares, and the swept ones in Hydra's order."""

    name: str  # its folder under out_dir
    kind: str  # compare | optimizer | augment | lr
    model: str
    fixed: tuple[str, ...]
    swept: tuple[tuple[str, tuple[str, ...]], ...]

    def sweep_dir(self, out_dir: Path) -> Path:
        return out_dir / self.name

    def arguments(self) -> list[str]:
        """The overrides on the command line: fixed ones, then `key=a,b,c` sweeps."""
        return [*self.fixed, *(f"{key}={','.join(values)}" for key, values in self.swept)]

    @property
    def jobs(self) -> list[Job]:
        """Every job, numbered as Hydra's basic sweeper numbers them."""
        lists = [[f"{key}={v}" for v in values] for key, values in self.swept]
        return [
            Job(self, number, (*self.fixed, *combination))
            for number, combination in enumerate(itertools.product(*lists))
        ]

    def states(self, out_dir: Path) -> list[str]:
        return [job.state(out_dir) for job in self.jobs]

    def done(self, out_dir: Path) -> bool:
        return all(state == "done" for state in self.states(out_dir))


def as_list(node: Any, key: str) -> list[Any]:
    value = OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
    if isinstance(value, (str, int, float)):
        value = [value]
    if not isinstance(value, list):
        raise CnnlabError(f"{key} must be a list, e.g. {key}=[a,b] (got {value!r})")
    return value


def budget_overrides(budget: DictConfig, epochs: int) -> list[str]:
    """The budget as train overrides (`++` adds a trainer key the trainer config lacks)."""
    return [
        f"trainer.max_epochs={epochs}",
        f"data.batch_size={budget.batch_size}",
        f"data.val_size={budget.val_size}",
        f"++trainer.limit_train_batches={format_value(budget.limit_train_batches)}",
        f"++trainer.limit_val_batches={format_value(budget.limit_val_batches)}",
        f"++trainer.max_time={format_value(budget.max_time)}"
        if budget.max_time
        else "++trainer.max_time=null",
    ]


def check_budget(budget: DictConfig) -> None:
    for key in ("epochs", "ablation_epochs", "batch_size", "val_size"):
        value = budget.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CnnlabError(f"budget.{key} must be a whole number >= 1 (got {value!r})")
    for key in ("limit_train_batches", "limit_val_batches"):
        value = budget.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise CnnlabError(
                f"budget.{key} must be a fraction of an epoch in (0, 1] or a number of "
                f"batches (got {value!r})"
            )
        if isinstance(value, float) and value > 1:
            raise CnnlabError(f"budget.{key}={value}: a fraction must be <= 1")


def named_parts(cfg: DictConfig) -> list[str]:
    """`parts`, checked: a subset of compare, optimizer, augment, lr."""
    parts = [str(p) for p in as_list(cfg.parts, "parts")]
    unknown = [p for p in parts if p not in PART_KINDS]
    if unknown:
        raise CnnlabError(f"parts: unknown part {unknown[0]!r}; parts are {', '.join(PART_KINDS)}")
    return parts


def make_plan(cfg: DictConfig) -> list[Part]:
    """Every part of the study, in the order they run: one compare part per model, then
    the ablations. Raises CnnlabError (one line) on an empty or malformed list."""
    check_budget(cfg.budget)
    train = [str(o) for o in as_list(cfg.train, "train")]
    compare, ablations = cfg.compare, cfg.ablations
    models = [str(m) for m in as_list(compare.models, "compare.models")]
    datasets = [str(d) for d in as_list(compare.datasets, "compare.datasets")]
    if not models or not datasets:
        raise CnnlabError("compare.models and compare.datasets must each name at least one")
    if len(set(models)) != len(models):
        raise CnnlabError(f"compare.models names a model twice: {models}")
    extra: Mapping[str, Any] = OmegaConf.to_container(compare.model_overrides or {})  # type: ignore[assignment]
    parts = []
    for model in models:
        own = [str(o) for o in as_list(extra.get(model, []), f"compare.model_overrides.{model}")]
        fixed = merged(
            train,
            budget_overrides(cfg.budget, cfg.budget.epochs),
            [f"model={model}", *own, f"seed={compare.seed}"],
        )
        parts.append(
            Part(f"compare/{model}", "compare", model, tuple(fixed), (("data", tuple(datasets)),))
        )
    seeds = tuple(format_value(s) for s in as_list(ablations.seeds, "ablations.seeds"))
    if not seeds:
        raise CnnlabError("ablations.seeds must name at least one seed, e.g. [0,1]")
    base = merged(
        train,
        budget_overrides(cfg.budget, cfg.budget.ablation_epochs),
        [f"model={ablations.model}", f"data={ablations.data}"],
    )
    for kind in ABLATIONS:
        values = tuple(format_value(v) for v in as_list(ablations[kind], f"ablations.{kind}"))
        if not values:
            raise CnnlabError(f"ablations.{kind} must name at least one value")
        key = ABLATION_KEYS[kind]
        fixed = [o for o in base if override_key(o) not in (key, "seed")]
        parts.append(
            Part(
                f"ablation/{kind}",
                kind,
                str(ablations.model),
                tuple(fixed),
                ((key, values), ("seed", seeds)),
            )
        )
    for part in parts:
        parsed(part.arguments())  # a malformed override is one line now
    return parts


def selected(parts: Sequence[Part], kinds: Sequence[str]) -> list[Part]:
    return [p for p in parts if p.kind in kinds]


# ----------------------------------------------------------------------------- estimate


@dataclass(frozen=True)
class Estimate:
    """Seconds of wall time on an idle machine, from the per-image costs in conf/study.yaml."""

    cpu_seconds: float
    wall_seconds: float


@functools.cache
def training_set_size(dataset: str) -> int:
    """Images in the dataset's official training set (a class fact: no file is read)."""
    import hydra

    from cnnlab.config import compose_config

    target = compose_config("train", [f"data={dataset}"]).data._target_
    return int(hydra.utils.get_class(str(target)).train_size)


def job_estimate(job: Job, budget: DictConfig, estimate: DictConfig, fp32: bool) -> Estimate:
    """Model compute (trained images x train cost, evaluated images x eval cost), which more
    threads share, plus the per-step work of the training loop and the per-run overhead,
    which they do not."""

    def limited(images: int, limit: float | int) -> float:
        if isinstance(limit, float):
            return images * min(limit, 1.0)
        return min(images, limit * budget.batch_size)

    epochs = int(job.value("trainer.max_epochs"))
    train_images = training_set_size(job.dataset) - budget.val_size
    trained = epochs * limited(train_images, budget.limit_train_batches)
    steps = trained / budget.batch_size
    evaluated = epochs * limited(budget.val_size, budget.limit_val_batches) + TEST_IMAGES
    costs = estimate.train_cpu_ms.get(job.part.model) or {}
    ms = float(costs.get(job.dataset, estimate.default_train_cpu_ms))
    per_sample = float((estimate.get("augment_cpu_ms") or {}).get(str(job.value("augment")), 0))
    compute = (trained * ms + estimate.eval_share * evaluated * ms) / 1000
    if fp32:
        compute *= estimate.fp32_slowdown
    loop = steps * estimate.step_ms / 1000 + trained * per_sample / 1000
    return Estimate(compute + loop, compute / estimate.thread_speedup + loop + estimate.job_seconds)
