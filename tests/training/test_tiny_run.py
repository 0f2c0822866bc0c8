import json


def test_tiny_run_writes_metrics_and_checkpoints(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    assert (tiny_run / "checkpoints" / "last.ckpt").is_file()
    assert metrics["best_checkpoint"].startswith(str(tiny_run / "checkpoints"))
    assert 0.5 < metrics["test/acc"] <= 1.0
