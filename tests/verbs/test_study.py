"""`cnnlab study` without training: the plan (Hydra's own job order), the guards on reused
folders and on the report folder, the dry run's estimate, and the study's figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from cnnlab.config import compose_config
from cnnlab.errors import CnnlabError
from cnnlab.reporting import figures
from cnnlab.study.plan import Part, format_value, identity, job_estimate, make_plan
from cnnlab.study.report import MARKER, model_label
from cnnlab.verbs.study import check_report_dir
from cnnlab.verbs.study import main as study_main


def plan(*overrides: str) -> list[Part]:
    return make_plan(compose_config("study", list(overrides)))


def test_default_plan_runs_every_model_on_both_datasets_and_three_ablations():
    parts = plan()
    assert [p.name for p in parts] == [
        "compare/simple_cnn", "compare/cifar10netv2", "compare/alexnet", "compare/blocknet",
        "compare/resnet18", "compare/airbench",
        "ablation/optimizer", "ablation/augment", "ablation/lr",
    ]  # fmt: skip
    assert [len(p.jobs) for p in parts] == [2] * 6 + [6, 6, 10]
    compare = parts[0].jobs
    assert [j.dataset for j in compare] == ["cifar10", "fashion_mnist"]
    assert all(j.value("trainer.max_epochs") == 2 and j.seed == 0 for j in compare)
    assert all(j.value("data.batch_size") == 128 for p in parts for j in p.jobs)
    # The ablation's own setting replaces the recipe's: one optim= override per job.
    optimizer = parts[6]
    assert [j.value("optim") for j in optimizer.jobs] == ["sgd"] * 2 + ["adam"] * 2 + ["adamw"] * 2
    assert all(sum(o.startswith("optim=") for o in j.overrides) == 1 for j in optimizer.jobs)
    lr = parts[8]
    assert sorted({j.value("optim.lr") for j in lr.jobs}) == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
    assert {j.value("optim") for j in lr.jobs} == {"adamw"}
    budget = compose_config("study", []).budget
    assert {j.value("trainer.max_epochs") for j in lr.jobs} == {budget.ablation_epochs}
    assert model_label(parts[4]) == "resnet18 (width=32)"
    assert model_label(parts[5]) == "airbench (widths=[32,64,128])"


@pytest.mark.parametrize("index", [0, 4, 8])
def test_job_numbers_are_hydras(index):
    """The study finds each run by its job number: the basic sweeper must number alike."""
    part = plan()[index]
    overrides = OverridesParser.create().parse_overrides(part.arguments())
    (batches,) = BasicSweeper.split_arguments(overrides, None)
    # As Hydra writes them (False, escaped colons), read as Hydra reads them.
    assert [identity(batch) for batch in batches] == [job.settings for job in part.jobs]


def test_fractions_stay_fractions():
    """limit_train_batches=1.0 is the whole epoch; written as 1 it would be one batch."""
    assert format_value(1.0) == "1.0"
    assert [format_value(v) for v in (0.25, 3e-4, 1e-05, 7)] == ["0.25", "0.0003", "1e-05", "7"]
    assert "++trainer.limit_train_batches=1.0" in plan()[0].fixed


def write_job(run_dir: Path, overrides: list[str], finished: bool) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if finished:
        (run_dir / "metrics.json").write_text(json.dumps({"test/acc": 0.5}))


def test_job_states_and_a_folder_of_other_settings(tmp_path):
    part = plan()[0]
    first, second = part.jobs
    assert first.state(tmp_path) == "todo"
    # Hydra records a value with colons escaped; the paths it ran with do not matter.
    recorded = [o.replace(":", "\\:") if "max_time" in o else o for o in first.overrides]
    write_job(first.run_dir(tmp_path), [*recorded, "paths.data_dir=/elsewhere"], finished=True)
    assert first.state(tmp_path) == "done"
    other = [o.replace("trainer.max_epochs=2", "trainer.max_epochs=3") for o in second.overrides]
    write_job(second.run_dir(tmp_path), other, finished=False)
    with pytest.raises(CnnlabError, match=r"holds a run of other settings \(trainer.max_epochs: 3"):
        second.state(tmp_path)
    (second.run_dir(tmp_path) / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(list(second.overrides))
    )
    assert second.state(tmp_path) == "started"
    assert not part.done(tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["parts=[compare,tuning]"], "parts: unknown part 'tuning'"),
        (["budget.epochs=0"], "budget.epochs must be a whole number >= 1"),
        (["budget.limit_train_batches=1.5"], "a fraction must be <= 1"),
        (["compare.models=[]"], "must each name at least one"),
        (["ablations.seeds=[]"], "ablations.seeds must name at least one seed"),
        (["compare.models=[alexnet,alexnet]"], "names a model twice"),
        (["threads=0"], "threads must be a whole number >= 1 or null"),
    ],
)
def test_bad_settings_are_one_line(overrides, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        study_main([*overrides, f"out_dir={tmp_path / 'runs'}", f"report_dir={tmp_path / 'r'}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cnnlab: error: ") and message in err[0], err
    assert not (tmp_path / "runs").exists()


def test_an_unknown_option_is_refused_before_anything_trains(tmp_path, synthetic_data_dir, capsys):
    with pytest.raises(SystemExit):
        study_main(["compare.models=[simple_cnn,vgg]", f"data_dir={synthetic_data_dir}",
                    f"out_dir={tmp_path / 'runs'}", f"report_dir={tmp_path / 'r'}"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab: error: compare/vgg: ") and "available: " in err
    assert not (tmp_path / "runs").exists()


def test_missing_data_is_refused_before_anything_trains(tmp_path, capsys):
    with pytest.raises(SystemExit):
        study_main([f"data_dir={tmp_path / 'nothing'}", f"out_dir={tmp_path / 'runs'}",
                    f"report_dir={tmp_path / 'r'}"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cnnlab: error: data_dir={tmp_path / 'nothing'} lacks cifar10")
    assert not (tmp_path / "runs").exists()


def test_report_dir_is_only_ever_a_study_report(tmp_path):
    out_dir = tmp_path / "runs"
    check_report_dir(tmp_path / "new", out_dir)
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "README.md").write_text(f"{MARKER} from ... -->\n# old\n")
    (ours / "accuracy_vs_size.png").write_bytes(b"png")
    check_report_dir(ours, out_dir)
    (ours / "notes.md").write_text("mine")
    with pytest.raises(CnnlabError, match="holds files the study did not write"):
        check_report_dir(ours, out_dir)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("# hand-written\n")
    with pytest.raises(CnnlabError, match=r"e\.g\. README\.md"):
        check_report_dir(docs, out_dir)
    with pytest.raises(CnnlabError, match="would hold the runs"):
        check_report_dir(tmp_path, out_dir)


def test_dry_run_prints_the_plan_and_an_estimate(tmp_path, capsys):
    study_main(["dry_run=true", f"out_dir={tmp_path / 'runs'}", f"report_dir={tmp_path / 'r'}"])
    out = capsys.readouterr().out
    assert "| compare/blocknet | 2 | 0 | 0 | 2 |" in out
    assert "| ablation/lr | 10 | 0 | 0 | 10 |" in out
    assert "estimated wall time left on an idle machine like this one" in out
    assert "optim.lr=0.0001,0.0003,0.001,0.003,0.01 seed=0,1" in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "r").exists()


def test_the_default_budget_fits_about_an_hour():
    """The budget rule of conf/study.yaml: about an hour on an idle 2-core CPU with native
    bf16, two to three times that in fp32 (from the per-image costs measured for its models)."""
    cfg = compose_config("study", [])
    parts = make_plan(cfg)

    def total(fp32: bool) -> float:
        jobs = sum(job_estimate(j, cfg.budget, cfg.estimate, fp32).wall_seconds
                   for p in parts for j in p.jobs)  # fmt: skip
        return jobs + len(parts) * cfg.estimate.process_seconds

    assert 45 * 60 <= total(fp32=False) <= 75 * 60
    assert 2 * total(fp32=False) <= total(fp32=True) <= 3 * total(fp32=False)


def test_study_figures():
    scatter = figures.labelled_scatter(
        [("parameters", {"CIFAR-10": [("a", 2e5, 60.0), ("b", 7e6, 75.0)], "F": []}),
         ("MACs", {})],
        "test accuracy (%)",
    )  # fmt: skip
    assert figures.figure_pixels(scatter) == (1240, 480)
    figures.png_bytes(scatter)
    bars = figures.seed_bars({"sgd": [61.0, 62.5], "adam": [64.0, 63.0], "none": []}, "acc", "t")
    assert figures.figure_pixels(bars)[0] >= 500
    figures.png_bytes(bars)
    curve = figures.seed_curve({1e-3: {"seed 0": 60.0, "seed 1": 61.0}, 1e-2: {"seed 0": 55.0}},
                               "learning rate", "acc", "t")  # fmt: skip
    ax = curve.axes[0]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == [
        "0.001",
        "0.01",
    ]
    figures.png_bytes(curve)
    figures.png_bytes(figures.seed_curve({}, "x", "y", "empty"))
    assert figures.compact_number(2e5) == "200k" and figures.compact_number(1.5e6) == "1.5M"


def test_an_augmentation_that_cannot_be_built_is_refused_first(
    tmp_path, synthetic_data_dir, monkeypatch, capsys
):
    """An augmentation of an optional package that is not installed: one line, no run."""
    monkeypatch.setitem(sys.modules, "albumentations", None)  # import fails
    with pytest.raises(SystemExit):
        study_main([f"data_dir={synthetic_data_dir}", f"out_dir={tmp_path / 'runs'}",
                    f"report_dir={tmp_path / 'r'}",
                    "ablations.augment=[none,albumentations]"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "cnnlab: error: ablation/augment: augment=albumentations needs the 'albumentations' extra"
    )
    assert len(err.splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_one_study_at_a_time_per_out_dir(tmp_path, synthetic_data_dir, capsys):
    import fcntl

    runs = tmp_path / "runs"
    runs.mkdir()
    with open(runs / ".study.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running study holds it
        with pytest.raises(SystemExit):
            study_main([f"data_dir={synthetic_data_dir}", f"out_dir={runs}",
                        f"report_dir={tmp_path / 'r'}", "parts=[lr]"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err == f"cnnlab: error: another cnnlab study is running on out_dir={runs}; " + (
        "wait for it, or stop it"
    )
    assert sorted(p.name for p in runs.iterdir()) == [".study.lock"]
