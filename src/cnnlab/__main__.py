"""`cnnlab <verb> key=value ...` (also `python -m cnnlab <verb> ...`): every verb, one convention.

Each verb is a module with a `main()` that reads its `key=value` arguments from `sys.argv`
in Hydra's override grammar; this entry point only picks the module.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from cnnlab.errors import fail

VERBS = {
    "train": ("cnnlab.training.task", "train a model (same as python train.py)"),
    "fetch": ("cnnlab.verbs.fetch", "make a dataset available offline-first"),
    "describe": ("cnnlab.verbs.describe", "classes, split sizes, pixel statistics, samples"),
    "inspect": ("cnnlab.verbs.inspect_model", "layers, params, MACs, receptive field"),
    "evaluate": ("cnnlab.verbs.evaluate", "score a checkpoint on the test or val split"),
    "predict": ("cnnlab.verbs.predict", "classify image files with a checkpoint"),
    "export": ("cnnlab.verbs.export", "export a checkpoint to ONNX, verified"),
    "report": ("cnnlab.verbs.report", "compare runs and sweeps in one report"),
    "tune": ("cnnlab.verbs.tune", "find a learning rate or batch size (Lightning's Tuner)"),
    "study": ("cnnlab.verbs.study", "every model on both datasets + ablations, one report"),
    "search": ("cnnlab.sweeps.search", "Optuna study over the train config, with pruning"),
}


def usage() -> str:
    lines = ["usage: cnnlab <verb> [key=value ...]   (cnnlab <verb> --help for its options)", ""]
    lines += [f"  {verb:<9} {text}" for verb, (_, text) in VERBS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        raise SystemExit(0 if args else 2)
    verb, rest = args[0], args[1:]
    if verb not in VERBS:
        fail(f"unknown verb {verb!r}; verbs: {', '.join(VERBS)} (cnnlab --help)")
    module = importlib.import_module(VERBS[verb][0])
    sys.argv = [f"cnnlab {verb}", *rest]  # the verbs (and Hydra's main) read sys.argv
    module.main()


if __name__ == "__main__":
    main()
