"""Export a checkpoint to ONNX and prove it: `cnnlab export ckpt_path=<ckpt> format=onnx`.

The file takes normalised float images (N x C x H x W, any N) named `images` and returns
`logits`; the normalisation (mean/std), class names and input shape are stored in the
model's metadata and in a JSON file beside it. Before the command succeeds, onnxruntime
runs the file on real test images and every logit must match PyTorch within `tolerance`
(default 1e-4); otherwise the file is removed and the command fails.
Needs the optional extra: pip install -e '.[onnx]'
Examples:
  cnnlab export ckpt_path=<run>/checkpoints/last.ckpt format=onnx
  cnnlab export ckpt_path=<ckpt> out_dir=/tmp/model verify_images=1000
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import CnnlabError, exits_cleanly
from cnnlab.verbs.cli import parse
from cnnlab.verbs.runs import LoadedRun, load_run, output_dir

FORMATS = ("onnx",)


def metadata(loaded: LoadedRun) -> dict[str, str]:
    """What a consumer needs beside the graph: how to prepare inputs and name outputs."""
    data = loaded.cfg.data
    return {
        "classes": json.dumps(loaded.classes),
        "input_shape": json.dumps(list(loaded.input_shape)),
        "input": "float32 N x C x H x W: pixels / 255, minus mean, divided by std (per channel)",
        "mean": json.dumps(list(data.mean)),
        "std": json.dumps(list(data.std)),
        "model": str(loaded.cfg.model.get("_target_")),
        "checkpoint": str(loaded.ckpt_path),
    }


def export_onnx(loaded: LoadedRun, path: Path, opset: int = 18, dynamo: bool = True) -> None:
    """Write the model as ONNX with a dynamic batch dimension."""
    try:
        import onnx
    except ImportError:
        raise CnnlabError("ONNX export needs the onnx extra: pip install -e '.[onnx]'") from None
    model = loaded.model.float().eval()
    example = torch.zeros(2, *loaded.input_shape)
    if dynamo:
        shape_args: dict[str, Any] = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)}
    else:
        shape_args = {"dynamic_axes": {"images": {0: "batch"}, "logits": {0: "batch"}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    chatter = io.StringIO()  # the exporter narrates each step on stdout
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["images"],
                output_names=["logits"],
                opset_version=opset,
                dynamo=dynamo,
                external_data=False,
                **shape_args,
            )
    except Exception as err:
        path.unlink(missing_ok=True)
        raise CnnlabError(
            f"torch.onnx could not export {loaded.cfg.model.get('_target_')} "
            f"({type(err).__name__}: {str(err).strip().splitlines()[0][:200]}); "
            f"try dynamo={'false' if dynamo else 'true'}"
        ) from None
    proto = onnx.load(str(path))
    for key, value in metadata(loaded).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def verify_onnx(loaded: LoadedRun, path: Path, count: int = 256) -> dict[str, Any]:
    """Run the file with onnxruntime on the first `count` test images; compare with PyTorch."""
    try:
        import onnxruntime
    except ImportError:
        raise CnnlabError("ONNX verification needs onnxruntime: pip install -e '.[onnx]'") from None
    loaded.datamodule.setup("test")
    images = loaded.datamodule.test_split.images[:count]
    inputs = loaded.prepare(images)
    expected = loaded.logits(images)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"images": inputs.numpy()})
    diff = (torch.from_numpy(got) - expected).abs()
    return {
        "images": len(images),
        "max_abs_logit_diff": float(diff.max()),
        "top1_agreement": float(
            (torch.from_numpy(got).argmax(1) == expected.argmax(1)).float().mean()
        ),
        "onnxruntime": onnxruntime.__version__,
    }


def export(
    ckpt_path: str | Path,
    fmt: str = "onnx",
    out_dir: str | None = None,
    opset: int = 18,
    dynamo: bool = True,
    verify_images: int = 256,
    tolerance: float = 1e-4,
    overrides: Sequence[Any] = (),
) -> tuple[Path, dict[str, Any]]:
    """Export and verify; returns (the .onnx path, the verification record)."""
    if fmt not in FORMATS:
        raise CnnlabError(f"format={fmt} is not supported; formats: {', '.join(FORMATS)}")
    if verify_images < 1:
        raise CnnlabError(
            f"verify_images must be >= 1 (got {verify_images}); e.g. verify_images=256"
        )
    loaded = load_run(ckpt_path, list(overrides))
    loaded.require_images("export")
    default = (loaded.run_dir or loaded.ckpt_path.parent) / "export" / loaded.ckpt_path.stem
    folder = output_dir(out_dir, default)  # new or empty: nothing is overwritten
    path = folder / f"{loaded.ckpt_path.stem}.onnx"
    try:
        export_onnx(loaded, path, opset, dynamo)
        check = verify_onnx(loaded, path, verify_images)
    except BaseException:
        _remove_failed(folder, path)
        raise
    check.update({"tolerance": tolerance, "opset": opset, "dynamo": dynamo})
    if not check["max_abs_logit_diff"] <= tolerance:
        _remove_failed(folder, path)
        raise CnnlabError(
            f"{path.name}: onnxruntime logits differ from PyTorch by up to "
            f"{check['max_abs_logit_diff']:.2e} (> tolerance {tolerance:g}) on "
            f"{check['images']} test images; the file was removed (try dynamo={not dynamo})"
        )
    sidecar = path.with_suffix(".json")
    info = {key: json.loads(v) if v.startswith("[") else v for key, v in metadata(loaded).items()}
    sidecar.write_text(
        json.dumps({**info, "file": path.name, "verification": check}, indent=2) + "\n"
    )
    return path, check


def _remove_failed(folder: Path, path: Path) -> None:
    """A file that failed verification is never left behind (nor the folder made for it)."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()  # only if empty


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    command = parse("export", argv, __doc__, run_overrides=True)
    cfg = command.cfg
    path, check = export(
        cfg.ckpt_path,
        cfg.format,
        cfg.out_dir,
        cfg.opset,
        cfg.dynamo,
        cfg.verify_images,
        cfg.tolerance,
        command.run_overrides,
    )
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and {path.with_suffix('.json').name}\n"
        f"verified with onnxruntime {check['onnxruntime']} on {check['images']} test images: "
        f"max |logit difference| {check['max_abs_logit_diff']:.2e} <= {check['tolerance']:g}, "
        f"top-1 agreement {check['top1_agreement']:.2%}"
    )


if __name__ == "__main__":
    main()
