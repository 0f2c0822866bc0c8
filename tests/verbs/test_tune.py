"""`cnnlab tune`: Lightning's Tuner on a composed train config."""

from __future__ import annotations

import json

import pytest

from cnnlab.verbs import tune

RUN = ["experiment=quickstart", "data.val_size=20", "data.batch_size=16"]


@pytest.fixture
def data_env(monkeypatch, synthetic_data_dir):
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(synthetic_data_dir))


def test_lr_finder_prints_and_plots_its_suggestion(data_env, tmp_path, capsys):
    out = tmp_path / "tune"
    tune.main(["what=lr", *RUN, "num_training=14", "max_lr=0.1", f"out_dir={out}"])
    result = json.loads((out / tune.RESULT_FILE).read_text())
    assert 1e-6 <= result["suggestion"] <= 0.1 and len(result["lr"]) == len(result["loss"])
    assert (out / tune.PLOT_FILE).stat().st_size > 0
    assert f"suggested optim.lr={result['suggestion']:.4g}" in capsys.readouterr().out
    assert not list(out.glob("*.ckpt")) and not (out / "tensorboard").exists()


def test_batch_size_finder_scales_up_to_max_val(data_env, tmp_path, capsys):
    out = tmp_path / "tune"
    tune.main(["what=batch_size", *RUN, "max_val=8", "steps_per_trial=1", f"out_dir={out}"])
    assert json.loads((out / tune.RESULT_FILE).read_text())["suggestion"] == 8
    assert "suggested data.batch_size=8" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["what=speed"], "what must be one of lr, batch_size"),
        (["optim.lr=-1"], "optim.lr must be > 0"),
    ],
)
def test_bad_input_is_one_line_and_creates_nothing(data_env, tmp_path, capsys, args, message):
    out = tmp_path / "tune"
    with pytest.raises(SystemExit) as exit_info:
        tune.main([*args, f"out_dir={out}"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
