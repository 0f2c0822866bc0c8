"""`cnnlab search`: a pruned Optuna study killed mid-trial resumes; workers share one study;
the best trial's command re-runs to the same score; bad input is one line."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.sweeps import search
from tests.helpers.train_cli import QUIET, explain, run_cnnlab, run_train, signal_callback_args

optuna = pytest.importorskip("optuna", reason="cnnlab[search] extra not installed")

# Fashion-MNIST synthetic: 200 training images, 7 steps per epoch; Adam at lr 1e-2 reaches
# ~0.3 val/acc in the first epoch, lr 1e-7 stays at 0 (hopeless, pruned at epoch 0 once a
# good trial completed: below the median).
TINY = [
    "data=fashion_mnist",
    "optim=adam",
    "scheduler=none",
    "data.val_size=40",
    "data.batch_size=32",
    "trainer.precision=32-true",
    *QUIET,
]
HOPELESS, GOOD = 1e-7, 1e-2
SPACE = ["space=none", f"+space.optim.lr={{type:categorical,choices:[{GOOD},{HOPELESS}]}}"]


def load(study_dir: Path, name: str = "s") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir}/optuna.sqlite")


def test_a_pruned_study_killed_mid_trial_resumes_and_its_best_trial_reruns(
    tmp_path: Path, synthetic_data_dir: Path
) -> None:
    study_dir = tmp_path / "study"
    command = [
        f"dir={study_dir}",
        "study_name=s",
        "n_trials=5",
        "sampler=random",
        "sampler.seed=0",
        "pruner.n_startup_trials=1",
        "pruner.n_warmup_steps=0",
        "heartbeat_interval=1",
        "grace_period=1",
        *SPACE,
        f"paths.data_dir={synthetic_data_dir}",
        "trainer.max_epochs=3",
        *TINY,
    ]
    # The third trial's training process is killed at its 3rd step.
    kill, folder = signal_callback_args(tmp_path / "cb", step=3, signum="SIGKILL", fit_index=2)
    killed = run_cnnlab("search", [*command, *kill], folder)
    assert killed.returncode == -signal.SIGKILL, explain(killed)
    before = {t.number: t for t in load(study_dir).trials}
    assert [t.state.name for t in before.values()][-1] == "RUNNING"
    assert len(before) == 3 and all(t.state.name != "RUNNING" for t in list(before.values())[:2])

    resumed = run_cnnlab("search", command)
    assert resumed.returncode == 0, explain(resumed)
    trials = load(study_dir).trials
    states = [t.state.name for t in trials]
    assert len(trials) == 5 and states.count("RUNNING") == 0, states
    for number in (0, 1):  # the finished trials are kept as they were
        assert trials[number].state == before[number].state
        assert trials[number].value == before[number].value
        assert trials[number].datetime_complete == before[number].datetime_complete
    assert states[2] == "FAIL"  # the killed one, failed by its missing heartbeat ...
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == 2)
    assert retry.params == trials[2].params  # ... and run again with the same draw
    assert "PRUNED" in states, states
    for t in trials:
        if t.state.name == "PRUNED":
            assert t.params["optim.lr"] == HOPELESS and len(t.intermediate_values) < 3
    assert sum(s in ("COMPLETE", "PRUNED", "FAIL") for s in states) == 5

    rows = json.loads((study_dir / "summary.json").read_text())
    assert [r["state"] for r in rows] == states
    assert (study_dir / "summary.csv").read_text().splitlines()[0].startswith("number,state")
    best = json.loads((study_dir / "best.json").read_text())
    assert best["params"] == {"optim.lr": GOOD}
    assert best["command"].startswith("python train.py ") and f"optim.lr={GOOD}" in best["command"]
    assert f"Re-run it:   {best['command']}" in resumed.stdout

    again = run_cnnlab("search", command)  # n_trials reached: nothing more to do
    assert again.returncode == 0, explain(again)
    assert len(load(study_dir).trials) == 5

    run_dir = tmp_path / "rerun"
    rerun = run_train([*best["overrides"], f"hydra.run.dir={run_dir}"], folder)
    assert rerun.returncode == 0, explain(rerun)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["best_val_acc"] == best["value"]


def test_two_workers_add_trials_to_one_study(tmp_path: Path, synthetic_data_dir: Path) -> None:
    study_dir = tmp_path / "study"
    result = run_cnnlab(
        "search",
        [
            f"dir={study_dir}",
            "study_name=s",
            "n_trials=6",
            "workers=2",
            "pruner=none",
            "space=none",
            "+space.optim.lr={type:float,low:1e-3,high:1e-2,log:true}",
            f"paths.data_dir={synthetic_data_dir}",
            "trainer.max_epochs=1",
            *TINY,
        ],
    )
    assert result.returncode == 0, explain(result)
    trials = load(study_dir).trials
    assert len(trials) >= 6 and all(t.state.name == "COMPLETE" for t in trials)
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    run_dirs = {t.user_attrs["run_dir"] for t in trials}
    assert len(run_dirs) == len(trials) and all(Path(d, "metrics.json").is_file() for d in run_dirs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["space.optim.lr.type=floaty"], "space.optim.lr.type must be one of float, int"),
        (["space.optim.lr.low=1"], "space.optim.lr: low must be < high (got 1, 0.1)"),
        (["+space.optim.nope={type:int,low:1,high:3}"], "space.optim.nope: the train config"),
        (["n_trials=0"], "n_trials must be an integer >= 1"),
        (["optim.lr=-1"], "optim.lr must be > 0"),
        (["space=none"], "space is empty"),
        (["trainer=ddp_cpu"], "use workers=N for trials in parallel"),
    ],
)
def test_bad_search_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message) -> None:
    with pytest.raises(SystemExit) as stop:
        search.main([f"dir={tmp_path / 'study'}", *args])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnlab: error: ") and message in lines[0]
    assert not (tmp_path / "study").exists()


def test_the_search_extra_is_named_when_optuna_is_missing(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna_integration", None)
    with pytest.raises(CnnlabError, match=r"pip install 'cnnlab\[search\]'"):
        search.require_optuna()


def test_hparams_search_optuna_points_at_cnnlab_search(tmp_path: Path) -> None:
    result = run_train(["hparams_search=optuna", f"hydra.run.dir={tmp_path / 'run'}"])
    assert result.returncode == 2
    assert "cnnlab: error: hparams_search=optuna is replaced by `cnnlab search`" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("optim.lr", 0.001, "optim.lr=0.001"),
        ("optim.lr", 1e-05, "optim.lr=1e-05"),
        ("data.batch_size", 128, "data.batch_size=128"),
        ("optim", "adamw", "optim=adamw"),
        ("model.name", "a b", "model.name='a b'"),
        ("model.flag", "true", "model.flag='true'"),
        ("callbacks.stop_at", None, "callbacks.stop_at=null"),
    ],
)
def test_drawn_values_become_hydra_overrides(key, value, text) -> None:
    assert search.override_text(key, value) == text
