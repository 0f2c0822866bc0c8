"""The CPU-side parts of bench/gpu_check.sh: CIFAR-10 packed for a GPU machine, and its JSON.

The GPU machine has no network and no `../shared`, and what travels to it in one call is
capped (64 MiB), so CIFAR-10 goes as a compact uint8 copy in parts of at most `--part-mib`:

    cifar10_index.json     classes, batch names and sizes, and each part's count and sha256
    cifar10_test.u8        labels (1 byte each), then images (3072 bytes each, CHW as in
    cifar10_train_<i>.u8   the official pickles); the train parts hold data_batch_1..5 in order

`unpack` rebuilds `cifar-10-batches-py/` (data_batch_1..5, test_batch, batches.meta) with the
same arrays, which `cnnlab.data.cifar10` reads as it reads the release (image file names are
not carried: nothing reads them). Unpacking needs only numpy, so it runs before anything is
installed. `selftest` proves the round trip bit-exact on a tiny synthetic CIFAR; `summarize`
turns the check's test report and run dirs into one JSON.

    python bench/gpu_pack.py pack --data-dir ../shared/data --payload bench/gpu_payload
    python bench/gpu_pack.py unpack --payload bench/gpu_payload --out /tmp/data
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import pickle
import statistics
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

INDEX = "cifar10_index.json"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
IMAGE_BYTES = 3 * 32 * 32
TARGET_ACC = 0.94


class PackError(Exception):
    """Bad input or an incomplete payload: reported as one line, exit 2."""


def check(condition: bool, message: str) -> None:
    """A selftest expectation: unlike `assert`, never compiled away."""
    if not condition:
        raise PackError(f"selftest: {message}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_pickle_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N x 3072 images, uint8 labels) of one official batch file."""
    if not path.is_file():
        raise PackError(f"{path}: missing CIFAR-10 batch file")
    with open(path, "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    data = np.ascontiguousarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != IMAGE_BYTES or labels.shape != (len(data),):
        raise PackError(f"{path}: not a CIFAR-10 batch (data {data.shape}, labels {labels.shape})")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise PackError(f"{path}: labels outside 0..9")
    return data, labels.astype(np.uint8)


def pack(data_dir: Path, payload: Path, part_mib: float) -> dict[str, Any]:
    """Write the index and the parts; returns the index."""
    folder = data_dir / FOLDER
    if not folder.is_dir():
        raise PackError(f"{folder}: not found; pass --data-dir a folder holding {FOLDER}/")
    if part_mib <= 0:
        raise PackError(f"--part-mib must be positive (got {part_mib})")
    payload.mkdir(parents=True, exist_ok=True)
    per_part = max(1, int(part_mib * 2**20) // (IMAGE_BYTES + 1))
    with open(folder / "batches.meta", "rb") as handle:
        names = [n.decode() for n in pickle.load(handle, encoding="bytes")[b"label_names"]]
    index: dict[str, Any] = {"format": 1, "classes": names, "batches": [], "parts": []}
    for split, batch_names in (("test", TEST_BATCHES), ("train", TRAIN_BATCHES)):
        batches = [read_pickle_batch(folder / name) for name in batch_names]
        index["batches"] += [
            {"name": name, "split": split, "count": len(b[1])}
            for name, b in zip(batch_names, batches, strict=True)
        ]
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        count = math.ceil(len(labels) / per_part)
        size = math.ceil(len(labels) / count)  # balanced parts, each under the cap
        for i in range(count):
            name = f"cifar10_{split}.u8" if split == "test" else f"cifar10_{split}_{i}.u8"
            lo, hi = i * size, min(len(labels), (i + 1) * size)
            path = payload / name
            with open(path, "wb") as handle:
                handle.write(labels[lo:hi].tobytes())
                handle.write(images[lo:hi].tobytes())
            index["parts"].append(
                {"name": name, "split": split, "count": hi - lo, "bytes": path.stat().st_size,
                 "sha256": sha256(path)}
            )  # fmt: skip
    (payload / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return index


def payload_status(payload: Path) -> dict[str, Any]:
    """Which parts are present and intact: what a device call still has to carry."""
    if not (payload / INDEX).is_file():
        return {"index": False, "missing": [INDEX], "ready": False}
    index = json.loads((payload / INDEX).read_text())
    missing, corrupt = [], []
    for part in index["parts"]:
        path = payload / part["name"]
        if not path.is_file():
            missing.append(part["name"])
        elif path.stat().st_size != part["bytes"] or sha256(path) != part["sha256"]:
            corrupt.append(part["name"])
    return {
        "index": True,
        "parts": [p["name"] for p in index["parts"]],
        "largest_part_mib": round(max(p["bytes"] for p in index["parts"]) / 2**20, 1),
        "missing": missing,
        "corrupt": corrupt,
        "ready": not missing and not corrupt,
    }


def unpack(payload: Path, out_dir: Path) -> Path:
    """Rebuild `<out_dir>/cifar-10-batches-py/` from a complete payload; returns that folder."""
    status = payload_status(payload)
    if not status["ready"]:
        bad = status["missing"] + [f"{n} (size or sha256 differs)" for n in status["corrupt"]]
        raise PackError(f"{payload}: incomplete CIFAR-10 payload, carry: {', '.join(bad)}")
    index = json.loads((payload / INDEX).read_text())
    folder = out_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        labels, images = [], []
        for part in (p for p in index["parts"] if p["split"] == split):
            raw = np.fromfile(payload / part["name"], dtype=np.uint8)
            n = part["count"]
            labels.append(raw[:n])
            images.append(raw[n:].reshape(n, IMAGE_BYTES))
        all_labels, all_images = np.concatenate(labels), np.concatenate(images)
        start = 0
        for batch in (b for b in index["batches"] if b["split"] == split):
            stop = start + batch["count"]
            record = {
                b"batch_label": batch["name"].encode(),
                b"labels": [int(v) for v in all_labels[start:stop]],
                b"data": all_images[start:stop],
            }
            with open(folder / batch["name"], "wb") as handle:
                pickle.dump(record, handle, protocol=4)
            start = stop
    meta = {
        b"label_names": [n.encode() for n in index["classes"]],
        b"num_cases_per_batch": index["batches"][-1]["count"],
        b"num_vis": IMAGE_BYTES,
    }
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle, protocol=4)
    return folder


def write_synthetic_cifar(folder: Path, per_batch: int, test_size: int) -> None:
    """A tiny CIFAR-10 in the official layout: random pixels, every class present."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*TRAIN_BATCHES, *TEST_BATCHES):
        n = test_size if name in TEST_BATCHES else per_batch
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, IMAGE_BYTES), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [b"c%d" % i for i in range(10)]}, handle, protocol=2)


def selftest() -> dict[str, Any]:
    """Pack and unpack a synthetic CIFAR in several parts; every batch must come back
    bit-exact, and a missing or damaged part must be named."""
    with tempfile.TemporaryDirectory(prefix="cnnlab_gpu_pack_") as tmp:
        root = Path(tmp)
        write_synthetic_cifar(root / "src" / FOLDER, per_batch=23, test_size=17)
        part_mib = 40 * (IMAGE_BYTES + 1) / 2**20  # 40 images a part: train in 3 parts
        index = pack(root / "src", root / "payload", part_mib)
        cap = int(part_mib * 2**20)
        check(all(p["bytes"] <= cap for p in index["parts"]), f"a part over {cap} bytes")
        check(sum(p["split"] == "train" for p in index["parts"]) == 3, "not 3 train parts")
        folder = unpack(root / "payload", root / "dst")
        for name in (*TRAIN_BATCHES, *TEST_BATCHES):
            a, b = read_pickle_batch(root / "src" / FOLDER / name), read_pickle_batch(folder / name)
            same = np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
            check(same, f"{name} differs after the round trip")
        with open(folder / "batches.meta", "rb") as handle:
            check(pickle.load(handle)[b"label_names"][3] == b"c3", "class names differ")
        damaged = root / "payload" / "cifar10_train_1.u8"
        raw = bytearray(damaged.read_bytes())
        raw[-1] ^= 0xFF
        damaged.write_bytes(bytes(raw))
        (root / "payload" / "cifar10_test.u8").unlink()
        try:
            unpack(root / "payload", root / "again")
        except PackError as err:
            named = "cifar10_test.u8" in str(err) and "cifar10_train_1.u8" in str(err)
            check(named, f"the missing and damaged parts are not both named: {err}")
        else:
            check(False, "an incomplete payload was unpacked")
    return {"round_trip": "bit-exact", "parts": len(index["parts"]), "part_cap_bytes": cap}


def junit_counts(path: Path) -> dict[str, Any]:
    """pytest's --junitxml totals: what the GPU-marked tests did."""
    if not path.is_file():
        return {"ran": False}
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    skipped = [
        f"{case.get('name')}: {case.find('skipped').get('message', '')}"
        for case in suite.iter("testcase")
        if case.find("skipped") is not None
    ]
    return {"ran": True, **counts, "seconds": round(float(suite.get("time", 0)), 1),
            "failed": failed, "skipped_why": skipped}  # fmt: skip


def summarize_runs(runs_dir: Path) -> dict[str, Any]:
    """airbench94 runs `compile-<false|true>_seed<S>/`: test accuracy, fit seconds, 94% or not.

    The recipe is a fixed 10 epochs; its time to 94% is its fit time when the final test
    accuracy (flip_translate TTA) is at least 94%. `runs.tsv` holds each process's exit code
    and wall time in ms (startup, data reading and the final test included)."""
    table: dict[str, dict[str, Any]] = {}
    rows = []
    if (runs_dir / "runs.tsv").is_file():
        for line in (runs_dir / "runs.tsv").read_text().splitlines():
            compile_flag, seed, rc, milliseconds = line.split("\t")
            rows.append((compile_flag, int(seed), int(rc), int(milliseconds) / 1000))
    for compile_flag in ("false", "true"):
        runs = []
        for flag, seed, rc, seconds in rows:
            if flag != compile_flag:
                continue
            run: dict[str, Any] = {"seed": seed, "exit_code": rc, "process_s": round(seconds, 1)}
            metrics_file = runs_dir / f"compile-{flag}_seed{seed}" / "metrics.json"
            if metrics_file.is_file():
                metrics = json.loads(metrics_file.read_text())
                run["test_acc"] = round(float(metrics["test/acc"]), 4)
                run["train_seconds"] = round(float(metrics["train_seconds"]), 2)
                run["epochs"] = metrics.get("epochs")
                run["reached_94"] = run["test_acc"] >= TARGET_ACC
            runs.append(run)
        done = [r for r in runs if "test_acc" in r]
        reached = [r["train_seconds"] for r in done if r["reached_94"]]
        table[f"compile_{compile_flag}"] = {
            "runs": runs,
            "finished": len(done),
            "reached_94": len(reached),
            "median_train_seconds": round(statistics.median(r["train_seconds"] for r in done), 2)
            if done
            else None,
            "median_seconds_to_94": round(statistics.median(reached), 2) if reached else None,
            "mean_test_acc": round(statistics.mean(r["test_acc"] for r in done), 4)
            if done
            else None,
        }
    return table


def summarize(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import Record  # torch and cnnlab: installed by now

    record = Record("gpu_check", args.out)
    record.data["command"] = args.command or record.data["command"]
    figures: dict[str, Any] = {
        "dry_run": args.dry_run,
        "seeds": args.seeds,
        "budget_s": args.budget_s,
        "payload": payload_status(Path(args.payload)),
    }
    if args.dry_run:
        figures["selftest"] = selftest()
        figures["plan"] = args.plan
    else:
        import torch

        from cnnlab.training.build import resolve_precision

        work = Path(args.work)
        figures["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        figures["gpu_count"] = torch.cuda.device_count()
        figures["cuda"] = torch.version.cuda
        figures["auto_precision"] = str(resolve_precision("auto", "auto"))
        figures["gpu_tests"] = junit_counts(work / "gpu_tests.xml")
        figures["airbench94"] = summarize_runs(work / "runs")
        figures["steps"] = (
            (work / "steps.log").read_text().splitlines() if (work / "steps.log").is_file() else []
        )
    record.write(**figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("pack", help="CIFAR-10 -> payload parts")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--payload", required=True)
    p.add_argument("--part-mib", type=float, default=60.0)
    p = sub.add_parser("unpack", help="payload parts -> <out>/cifar-10-batches-py")
    p.add_argument("--payload", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("status", help="which payload parts are present and intact")
    p.add_argument("--payload", required=True)
    sub.add_parser("selftest", help="bit-exact pack/unpack round trip on a synthetic CIFAR")
    p = sub.add_parser("summarize", help="the check's JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--payload", required=True)
    p.add_argument("--work", default=None)
    p.add_argument("--seeds", type=int, required=True)
    p.add_argument("--budget-s", type=int, required=True)
    p.add_argument("--command", default=None)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--plan", nargs="*", default=[])
    args = parser.parse_args(argv)
    try:
        if args.verb == "pack":
            index = pack(Path(args.data_dir), Path(args.payload), args.part_mib)
            for part in index["parts"]:
                print(f"{args.payload}/{part['name']}: {part['bytes'] / 2**20:.1f} MiB")
        elif args.verb == "unpack":
            print(unpack(Path(args.payload), Path(args.out)))
        elif args.verb == "status":
            print(json.dumps(payload_status(Path(args.payload))))
        elif args.verb == "selftest":
            print(json.dumps(selftest()))
        else:
            summarize(args)
    except PackError as err:
        print(f"gpu_pack: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
