"""`cnnlab.verbs.predict` on image files (one of them corrupt) and `cnnlab.verbs.export` to ONNX."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.verbs.export import export
from cnnlab.verbs.predict import main as predict_main
from cnnlab.verbs.runs import load_run


@pytest.fixture(scope="module")
def loaded(tiny_run):
    run = load_run(tiny_run / "checkpoints" / "last.ckpt")
    run.datamodule.setup("test")
    return run


@pytest.fixture
def image_dir(loaded, tmp_path):
    """Four real test images as 28x28 PNGs, one as a large RGB JPEG, and a corrupt PNG."""
    folder = tmp_path / "images"
    folder.mkdir()
    images = loaded.datamodule.test_split.images
    for i in range(4):
        Image.fromarray(images[i, 0].numpy()).save(folder / f"test{i}.png")
    Image.fromarray(images[4, 0].numpy()).convert("RGB").resize((300, 200)).save(folder / "big.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return folder


def test_predict_a_directory_skips_the_corrupt_file(tiny_run, loaded, image_dir, tmp_path, capsys):
    out = tmp_path / "out"
    predict_main(
        [
            f"ckpt_path={tiny_run / 'checkpoints' / 'last.ckpt'}",
            f"inputs={image_dir}",
            "top_k=3",
            f"out_dir={out}",
        ]
    )
    captured = capsys.readouterr()
    assert "broken.png" in captured.err and "not a readable image" in captured.err
    assert "test0.png" in captured.out  # the table

    document = json.loads((out / "predictions.json").read_text())
    assert [p["file"].rsplit("/", 1)[-1] for p in document["predictions"]] == [
        "big.jpg", "test0.png", "test1.png", "test2.png", "test3.png"
    ]  # fmt: skip
    assert [s["file"].rsplit("/", 1)[-1] for s in document["skipped"]] == ["broken.png"]

    # The lossless PNGs are the test images themselves: same probabilities as the model.
    probs = loaded.logits(loaded.datamodule.test_split.images[:4]).softmax(dim=1)
    for i, entry in enumerate(document["predictions"][1:]):
        top = entry["top"]
        assert len(top) == 3
        assert [t["probability"] for t in top] == sorted(
            (t["probability"] for t in top), reverse=True
        )
        best = int(probs[i].argmax())
        assert top[0]["class"] == loaded.classes[best]
        assert top[0]["probability"] == pytest.approx(float(probs[i, best]), abs=1e-5)

    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["file", "class_1", "probability_1"]
    assert len(rows) == 1 + 5


def test_predict_a_glob_and_nothing_readable(tiny_run, image_dir, tmp_path, capsys):
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    predict_main(
        [f"ckpt_path={ckpt}", f"inputs={image_dir}/test*.png", f"out_dir={tmp_path / 'g'}"]
    )
    document = json.loads((tmp_path / "g" / "predictions.json").read_text())
    assert len(document["predictions"]) == 4 and document["skipped"] == []

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        predict_main([f"ckpt_path={ckpt}", f"inputs={image_dir / 'broken.png'}"])
    assert exit_info.value.code == 2
    assert "none of the 1 files is a readable image" in capsys.readouterr().err


def test_export_onnx_matches_pytorch(tiny_run, loaded, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "onnx"
    path, check = export(tiny_run / "checkpoints" / "last.ckpt", out_dir=str(out), verify_images=64)
    assert path == out / "last.onnx" and path.is_file() and check["images"] == 64
    assert check["max_abs_logit_diff"] <= 1e-4

    # Independently: another batch size (the batch axis is dynamic), other real images.
    images = loaded.datamodule.test_split.images[1000:1013]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == loaded.classes
    (got,) = session.run(None, {"images": loaded.prepare(images).numpy()})
    expected = loaded.logits(images)
    assert got.shape == (13, 10)
    assert np.abs(got - expected.numpy()).max() <= 1e-4
    assert torch.equal(torch.from_numpy(got).argmax(1), expected.argmax(1))

    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["verification"]["max_abs_logit_diff"] == check["max_abs_logit_diff"]

    with pytest.raises(Exception, match="already exists and is not empty"):
        export(tiny_run / "checkpoints" / "last.ckpt", out_dir=str(out))
