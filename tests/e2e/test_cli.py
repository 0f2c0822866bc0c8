"""`python train.py ...` as a user runs it: exit codes, the one error line, what is printed."""

from __future__ import annotations

import pytest

from tests.helpers.train_cli import explain, run_train


def test_bad_value_is_one_line_and_exit_2(tmp_path, synthetic_data_dir):
    result = run_train(
        ["optim.lr=-1", f"hydra.run.dir={tmp_path / 'run'}"], data_dir=synthetic_data_dir
    )
    assert result.returncode == 2, explain(result)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == ["cnnlab: error: optim.lr must be > 0 (got -1); e.g. optim.lr=0.01"]


def test_refuses_to_reuse_a_run_dir_and_keeps_its_files(tmp_path, synthetic_data_dir):
    run_dir = tmp_path / "old_run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("precious: true\n")
    (run_dir / "metrics.json").write_text('{"test/acc": 0.9}\n')
    result = run_train(["debug=fast", f"hydra.run.dir={run_dir}"], data_dir=synthetic_data_dir)
    assert result.returncode == 2, explain(result)
    assert "already holds a run" in result.stderr and str(run_dir) in result.stderr
    assert (run_dir / ".hydra" / "config.yaml").read_text() == "precious: true\n"
    assert (run_dir / "metrics.json").read_text() == '{"test/acc": 0.9}\n'


def test_bad_csv_exits_with_one_line_naming_file_and_column(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("sqm,label\n" + "".join(f"{i},a\n" for i in range(9)) + "n/a!,b\n")
    result = run_train(
        [
            "data=csv",
            f"data.path={csv}",
            "data.target=label",
            "model=mlp",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    assert result.returncode == 2, explain(result)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"cnnlab: error: {csv}: column 'sqm'"), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.real_data
def test_canonical_call_on_real_cifar10_prints_metrics_and_paths(real_data_dir, tmp_path):
    run_dir = tmp_path / "canonical"
    result = run_train(
        ["model=cifar10netv2", "optim=adamw", "debug=fast", f"hydra.run.dir={run_dir}"],
        data_dir=real_data_dir,
    )
    assert result.returncode == 0, explain(result)
    assert "test/f1" in result.stdout and f"Run dir:     {run_dir}" in result.stdout
