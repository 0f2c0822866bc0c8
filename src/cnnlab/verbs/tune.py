"""Tune a run with Lightning's Tuner: `cnnlab tune what=lr|batch_size <train overrides>`.

The run is composed exactly as `python train.py <overrides>` composes it (model, data,
optimizer, schedule), without its loggers and callbacks: nothing of a run dir is written.
  what=lr          Tuner.lr_find: prints the suggested learning rate, writes lr_find.png
                   (loss against lr, the suggestion marked) and tune.json
  what=batch_size  Tuner.scale_batch_size: prints the largest batch size that fits,
                   writes tune.json
Examples:
  cnnlab tune what=lr experiment=quickstart
  cnnlab tune what=lr model=resnet18 optim=sgd num_training=200
  cnnlab tune what=batch_size model=resnet18 trainer=gpu
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.tuner import Tuner
from omegaconf import DictConfig, open_dict

from cnnlab.config import compose_run_config
from cnnlab.errors import CnnlabError, exits_cleanly
from cnnlab.reporting import figures
from cnnlab.training.task import build_run
from cnnlab.training.validation import validate_config
from cnnlab.verbs.cli import parse
from cnnlab.verbs.runs import output_dir

WHATS = ("lr", "batch_size")
PLOT_FILE, RESULT_FILE = "lr_find.png", "tune.json"
MAX_EPOCHS = 10_000


def tuning_config(overrides: list[str], out: Path | None) -> DictConfig:
    """The train config of `overrides`, writing nothing but Lightning's temporary checkpoint
    (into `out`, removed again by the Tuner): no loggers, no callbacks."""
    cfg = compose_run_config(overrides, out or Path("."))
    with open_dict(cfg):
        cfg.logger = {}
        cfg.callbacks = {}
        cfg.trainer.enable_checkpointing = False
        # The Tuner stops by steps (num_training, steps_per_trial): epochs must not stop it first.
        cfg.trainer.max_epochs = MAX_EPOCHS
    return cfg


def find_lr(cfg: DictConfig, tune: DictConfig, out: Path) -> dict[str, Any]:
    datamodule, module, trainer = build_run(cfg)
    finder = Tuner(trainer).lr_find(
        module,
        datamodule=datamodule,
        min_lr=tune.min_lr,
        max_lr=tune.max_lr,
        num_training=tune.num_training,
        update_attr=False,
    )
    if finder is None:  # only under fast_dev_run
        raise CnnlabError("the learning-rate finder does not run under trainer.fast_dev_run")
    suggestion = finder.suggestion()
    fig = figures.new_figure(6, 4)
    finder.plot(suggest=suggestion is not None, ax=fig.add_subplot())
    fig.axes[0].set_title(
        f"lr range test: suggestion {suggestion:.3g}" if suggestion else "lr range test"
    )
    figures.save(fig, out / PLOT_FILE)
    return {
        "what": "lr",
        "suggestion": suggestion,
        "lr": [float(v) for v in finder.results["lr"]],
        "loss": [float(v) for v in finder.results["loss"]],
    }


def find_batch_size(cfg: DictConfig, tune: DictConfig) -> dict[str, Any]:
    datamodule, module, trainer = build_run(cfg)
    size = Tuner(trainer).scale_batch_size(
        module,
        datamodule=datamodule,
        mode=tune.mode,
        steps_per_trial=tune.steps_per_trial,
        max_trials=tune.max_trials,
        max_val=tune.max_val,
    )
    return {"what": "batch_size", "suggestion": size}


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    command = parse("tune", argv, __doc__, run_overrides=True)
    tune = command.cfg
    if tune.what not in WHATS:
        raise CnnlabError(f"what must be one of {', '.join(WHATS)} (got {tune.what!r})")
    overrides = [o.input_line for o in command.run_overrides]
    validate_config(tuning_config(overrides, None))  # bad input: one line, nothing created
    out = output_dir(tune.out_dir, Path(tune.paths.log_dir) / "tune" / str(tune.what))
    cfg = tuning_config(overrides, out)
    if tune.what == "lr":
        result = find_lr(cfg, tune, out)
        key = "optim.lr"
    else:
        result = find_batch_size(cfg, tune)
        key = "data.batch_size"
    (out / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    if result["suggestion"] is None:
        print(f"no suggestion from {out}: too few steps, or no falling loss (num_training=...)")
    else:
        print(f"suggested {key}={result['suggestion']:.4g}")
    for name in (PLOT_FILE, RESULT_FILE):
        if (out / name).exists():
            print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
