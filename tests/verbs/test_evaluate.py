"""`cnnlab.verbs.evaluate`: a checkpoint scored again must give training's numbers, and bad input
must end as one line naming the file."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from cnnlab.verbs.evaluate import evaluate, main, most_confident_mistakes
from cnnlab.verbs.runs import load_run

# Same hardware, same precision (tiny_run trains in fp32; evaluation is pinned to it), same
# numbers: on CPU evaluation repeats training's test pass exactly; on a GPU cuDNN's
# algorithm choice and summation order may move the last digits.
TOLERANCE = 5e-3 if torch.cuda.is_available() else 1e-6


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("cnnlab: error: ")
    return err[0]


@pytest.fixture(scope="module")
def evaluated(tiny_run, tmp_path_factory):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    out = tmp_path_factory.mktemp("eval") / "test"
    result, written = evaluate(
        metrics["best_checkpoint"], split="test", out_dir=str(out), precision="32-true"
    )
    return metrics, result, written


def test_evaluate_reproduces_training_test_metrics(evaluated):
    training, result, out = evaluated
    for key in ("test/acc", "test/precision", "test/recall", "test/f1", "test/loss"):
        assert result[key] == pytest.approx(training[key], abs=TOLERANCE), key
    for name, values in training["per_class"].items():
        assert result["per_class"][name] == pytest.approx(values, abs=TOLERANCE), name
    assert json.loads((out / "metrics.json").read_text())["test/acc"] == result["test/acc"]
    assert result["num_samples"] == 10_000


def test_evaluate_matches_a_direct_pass_over_the_test_set(evaluated):
    training, result, _ = evaluated
    loaded = load_run(training["best_checkpoint"])
    loaded.datamodule.setup("test")
    split = loaded.datamodule.test_split
    predicted = loaded.logits(split.images).argmax(dim=1)
    assert float((predicted == split.labels).float().mean()) == pytest.approx(
        result["test/acc"], abs=TOLERANCE
    )


def test_evaluate_writes_pictures_and_tables(evaluated):
    _, _, out = evaluated
    for name in ("confusion_matrix.png", "misclassified.png"):
        with Image.open(out / name) as image:
            image.load()
            assert image.width > 500 and image.height > 300
    # 36 mistakes in rows of 9 -> 4 rows of 1.15 * 1.45 in + title, 9 columns of 1.15 * 1.25 in
    with Image.open(out / "misclassified.png") as image:
        assert image.size == (round(9 * 1.15 * 1.25 * 100), round((4 * 1.15 * 1.45 + 0.4) * 100))
    table = (out / "per_class.md").read_text()
    assert "| Shirt |" in table and "10,000" in table


def test_most_confident_mistakes_are_wrong_and_sorted():
    logits = torch.tensor([[5.0, 0.0], [0.0, 1.0], [0.0, 9.0], [3.0, 0.0]])
    labels = torch.tensor([1, 1, 0, 0])
    mistakes = most_confident_mistakes(logits, labels, count=5)
    assert [m[0] for m in mistakes] == [2, 0]  # index 2 is the surer mistake
    assert all(t != p for _, t, p, _ in mistakes)


def test_evaluate_val_split_uses_the_runs_validation_images(tiny_run, tmp_path):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    result, _ = evaluate(metrics["best_checkpoint"], split="val", out_dir=str(tmp_path / "v"))
    assert result["num_samples"] == 5000  # data.val_size of the quickstart run
    assert "val/acc" in result and "test/acc" not in result
    assert 0.5 < result["val/acc"] <= 1.0


def test_checkpoint_of_another_model_fails_with_one_line(tiny_run, capsys):
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    before = sorted(p.name for p in tiny_run.rglob("*"))
    with pytest.raises(SystemExit) as exit_info:
        main([f"ckpt_path={ckpt}", "model=resnet18"])
    assert exit_info.value.code == 2
    line = error_line(capsys)
    assert str(ckpt) in line and "does not match model ResNet" in line
    assert sorted(p.name for p in tiny_run.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("content", [None, b"not a checkpoint at all"])
def test_missing_or_corrupt_checkpoint_fails_with_one_line(tmp_path, capsys, content):
    ckpt = tmp_path / "model.ckpt"
    if content is not None:
        ckpt.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        main([f"ckpt_path={ckpt}"])
    assert exit_info.value.code == 2
    line = error_line(capsys)
    assert str(ckpt) in line
    assert ("no such checkpoint file" if content is None else "corrupt or unreadable") in line
    assert "weights_only" not in line  # torch's advice would send the user the wrong way


def test_bad_split_and_missing_ckpt_path_are_one_line(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert "ckpt_path is required" in error_line(capsys)
    with pytest.raises(SystemExit):
        main(["ckpt_path=x.ckpt", "split=train"])
    assert "split=train is not one of test, val" in error_line(capsys)
