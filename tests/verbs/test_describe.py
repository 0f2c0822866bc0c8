"""`cnnlab.verbs.describe`: counts, statistics and sample grid of a dataset as it is served."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from cnnlab.verbs.describe import channel_stats, main


def test_channel_stats_match_float_arithmetic():
    images = torch.randint(
        0, 256, (37, 3, 5, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    mean, std = channel_stats(images, chunk=8)  # several chunks, one partial
    pixels = images.double().div(255).permute(1, 0, 2, 3).reshape(3, -1)
    assert mean == pytest.approx(pixels.mean(dim=1).tolist(), abs=1e-12)
    assert std == pytest.approx(pixels.std(dim=1, unbiased=False).tolist(), abs=1e-12)


def test_describe_fashion_mnist(real_data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(real_data_dir))
    out = tmp_path / "fm"
    main(["data=fashion_mnist", f"out_dir={out}", "samples_per_class=6"])
    printed = capsys.readouterr().out
    text = (out / "describe.md").read_text()
    assert text in printed

    assert "1 x 28 x 28" in text and "784 values per image" in text
    counts_section = text.split("## Images per class", 1)[1].split("## ", 1)[0]
    rows = {
        cells[1]: cells[2:]
        for line in counts_section.splitlines()
        if line.startswith("| ") and (cells := [c.strip() for c in line.strip("|").split("|")])
    }
    assert rows.pop("class") == ["train", "val", "test"]
    assert rows.pop("**total**") == ["55,000", "5,000", "10,000"]
    assert len(rows) == 10 and all(row[2] == "1,000" for row in rows.values())
    assert sum(int(row[0].replace(",", "")) for row in rows.values()) == 55_000
    assert sum(int(row[1].replace(",", "")) for row in rows.values()) == 5_000

    # The published normalisation constants of Fashion-MNIST, recomputed from the pixels.
    official = next(
        line for line in text.splitlines() if line.startswith("| official training set")
    )
    mean, std = (float(c) for c in official.strip("|").split("|")[1:3])
    assert mean == pytest.approx(0.2860, abs=1e-4) and std == pytest.approx(0.3530, abs=1e-4)

    # samples.png: one row of 6 images per class, sized by figures.class_samples.
    with Image.open(out / "samples.png") as image:
        image.load()
        assert image.size == (
            round((1.6 + 6 * 1.15 * 0.8) * 100),
            round((10 * 1.15 * 0.8 + 0.5) * 100),
        )
        assert image.convert("L").getextrema() == (0, 255)  # real pictures, not a blank canvas


def test_describe_refuses_unknown_options_and_used_out_dirs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data=fashion_mnist", "sample_per_class=3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown option 'sample_per_class'" in err[0]

    used = tmp_path / "used"
    used.mkdir()
    (used / "describe.md").write_text("keep me")
    with pytest.raises(SystemExit):
        main(["data=fashion_mnist", f"out_dir={used}"])
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (used / "describe.md").read_text() == "keep me"
