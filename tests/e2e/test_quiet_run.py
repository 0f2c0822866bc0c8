"""A normal run prints its config, progress and results: no library noise to learn to ignore."""

from __future__ import annotations

from tests.helpers.train_cli import explain, run_train

# Lines Lightning and torch print on a plain run unless cnnlab silences them at the source.
NOISE = (
    "litlogger",  # the LitLogger advertisement
    "litmodels",  # the LitModelCheckpoint advertisement
    "💡 Tip",
    "LeafSpec",  # torch's pytree deprecation, triggered inside Lightning
    "is not supported by the model summary",  # bf16-mixed and the model summary
    "`weights_only` was not set",  # once per checkpoint save
    "to estimate number of stepping batches",
)


def test_quickstart_run_prints_none_of_the_known_noise(tmp_path, synthetic_data_dir):
    result = run_train(
        [
            "experiment=quickstart",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=5",
            "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=2",
            "data.val_size=20",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        data_dir=synthetic_data_dir,
        show_warnings=True,
    )
    assert result.returncode == 0, explain(result)
    output = result.stdout + result.stderr
    assert [noise for noise in NOISE if noise in output] == [], explain(result)
    # What a run does print: its config tree, progress and results.
    assert "model: simple_cnn" in output and "optim: adam" in output
    assert "Epoch 0" in output and "test/acc" in output
