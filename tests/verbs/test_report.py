"""`cnnlab report` over a small sweep with a failed job, and its HTML in a headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess

import pytest
from PIL import Image

from cnnlab.verbs.report import main as report_main
from cnnlab.verbs.report import report

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def sweep(tiny_run, tmp_path_factory):
    """A multirun dir as Hydra lays it out: jobs 0 and 1 finished (copies of the tiny run with
    their own overrides and scores), job 2 failed before writing metrics."""
    root = tmp_path_factory.mktemp("sweep")
    (root / "multirun.yaml").write_text("hydra: {}\n")
    scores = {0: None, 1: 0.5}  # job 0 keeps the tiny run's own metrics
    for job, lr in ((0, 0.002), (1, 0.02)):
        shutil.copytree(tiny_run, root / str(job), ignore=shutil.ignore_patterns("*.ckpt"))
        (root / str(job) / ".hydra").mkdir()
        (root / str(job) / ".hydra" / "overrides.yaml").write_text(
            f"- experiment=quickstart\n- optim.lr={lr}\n"
        )
        if scores[job] is not None:
            metrics = json.loads((root / str(job) / "metrics.json").read_text())
            metrics["test/acc"] = scores[job]
            (root / str(job) / "metrics.json").write_text(json.dumps(metrics))
    failed = root / "2" / ".hydra"
    failed.mkdir(parents=True)
    (failed / "overrides.yaml").write_text("- experiment=quickstart\n- optim.lr=-1\n")
    return root


@pytest.fixture(scope="module")
def written(sweep, tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    runs = report([sweep], out, title="Sweep report")
    return out, runs


def table_rows(markdown: str, heading: str) -> list[list[str]]:
    section = markdown.split(f"## {heading}\n", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    end = next((i for i, line in enumerate(section.splitlines()) if line.startswith("## ")), None)
    if end is not None:
        lines = [line for line in section.splitlines()[:end] if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_report_lists_every_run_and_marks_the_failed_one(written, tiny_run):
    out, _ = written
    text = (out / "report.md").read_text()
    header, *rows = table_rows(text, "Results")
    assert len(rows) == 3  # one row per run, the failed one included
    assert header[:5] == ["#", "optim.lr", "data", "model", "status"]
    assert [r[1] for r in rows] == ["0.002", "0.02", "-1"]  # the swept value, as typed
    assert [r[4] for r in rows] == ["ok", "ok", "**FAILED**"]
    tiny = json.loads((tiny_run / "metrics.json").read_text())
    accuracy = header.index("test acc %")
    assert rows[0][accuracy].strip("*") == f"{100 * tiny['test/acc']:.2f}"
    assert rows[1][accuracy] == "50.00"
    assert rows[2][accuracy] == "—"

    _, *setup = table_rows(text, "Setup")
    assert len(setup) == 3
    assert "SimpleCNN" in setup[0] and "186.11 k" in setup[0]  # rebuilt from the checkpoint config
    assert "16 px" in setup[0]  # receptive field measured by cnnlab.reporting.inspection


def test_report_pictures_exist_and_decode(written):
    out, _ = written
    text = (out / "report.md").read_text()
    for name in ("val_acc.png", "val_loss.png", "per_class_f1_fashion_mnist.png", "sweep.png",
                 "reference_fashion_mnist.png"):  # fmt: skip
        assert f"]({name})" in text
        with Image.open(out / name) as image:
            image.load()
            assert image.width >= 400
    assert "arxiv.org" not in text.split("### Fashion-MNIST")[1]  # Fashion-MNIST sources only
    assert "zalandoresearch/fashion-mnist" in text


def test_report_html_is_self_contained(written):
    out, _ = written
    page = (out / "report.html").read_text()
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(sources) >= 5 + 2 * 2  # report figures + each finished run's curves and matrix
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).load()
    assert "<script" not in page and "<link" not in page
    results = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]  # the first table: results
    assert results.count("<tr>") == 3 and "<strong>FAILED</strong>" in results


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium not installed (Debian: apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    return found


# Appended to a copy of the page only: counts images that failed to decode once loaded.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const broken = imgs.filter((img) => !img.complete || img.naturalWidth === 0);
  broken.forEach((img) => console.error("broken image " + img.alt));
  document.body.dataset.images = imgs.length;
  document.body.dataset.broken = broken.length;
});
</script>"""


def test_report_html_opens_in_headless_chromium(written, tmp_path):
    browser = chromium()
    out, _ = written
    page = tmp_path / "probe.html"
    page.write_text((out / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console  # no script errors, no broken image reports
    body = re.search(r"<body([^>]*)>", result.stdout)
    assert body is not None
    images = int(re.search(r'data-images="(\d+)"', body.group(1)).group(1))
    assert images >= 9
    assert re.search(r'data-broken="0"', body.group(1))
    assert "Sweep report" in result.stdout


def test_report_cli_refuses_a_path_that_is_not_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path) in err[0] and "neither a run dir" in err[0]


def test_cifar10_references_carry_the_current_speed_records_with_their_sources():
    from cnnlab.reporting.references import REFERENCES, references_for

    refs = {r.method: r for r in references_for("cifar10")}
    records = {  # method: (accuracy %, time as the source's README gives it)
        "airbench94_muon": (94.01, "2.59 s"),
        "airbench96_faster": (96.00, "27.3 s"),
        "cifar10-speedrun (Hiverge)": (94.01, "2.015 s"),
    }
    for method, (accuracy, seconds) in records.items():
        assert refs[method].accuracy == accuracy and seconds in refs[method].note, method
    assert refs["cifar10-speedrun (Hiverge)"].url == "https://github.com/hiverge/cifar10-speedrun"
    assert not any("3.29 s" in r.note for r in REFERENCES)  # the paper's superseded figure
    assert all(r.url.startswith("https://") and r.source for r in REFERENCES)
