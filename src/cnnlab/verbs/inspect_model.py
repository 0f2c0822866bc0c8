"""The inspector: `cnnlab inspect model=<m> data=<d>`.

Builds the model exactly as training does (the data module's `model_kwargs()` give input
channels, class count and image size) and prints what it is made of: the per-layer table
from Lightning's ModelSummary, total parameters, multiply-accumulates per image and the
theoretical receptive field of the final feature map (see `cnnlab.reporting.inspection`). The last
line is one JSON object so scripts can read the figures without parsing the table.

Why a data module is built at all: the input shape and class count belong to the dataset,
and asking the data module keeps one source of truth. Its constructor reads no files, so
the inspector works on a fresh clone before any data is fetched.

Composition is `conf/inspect.yaml`: the whole train config (so `experiment=cifar10netv2_to_85`
inspects that experiment's model) with `hydra: inspect`, which writes no run dir, no
`.hydra/` and no log files.
"""

from __future__ import annotations

import json
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from cnnlab.errors import CnnlabError, exits_cleanly
from cnnlab.paths import CONFIG_DIR
from cnnlab.reporting.inspection import format_layer_table, inspect_model
from cnnlab.training.build import build


def inspect_config(cfg: DictConfig) -> dict[str, Any]:
    """Model figures for a composed config: the dict behind the inspector's JSON line,
    plus `layers` (ModelSummary rows) for the table."""
    datamodule = build(cfg.data, "data")  # constructor only: reads no files
    kwargs = datamodule.model_kwargs()
    model = build(cfg.model, "model", **kwargs)
    shape = (kwargs["in_channels"], kwargs["image_size"], kwargs["image_size"])
    try:
        info = inspect_model(model, shape)
    except (NotImplementedError, RuntimeError) as err:
        # The receptive field needs an fx-traceable model with modelled geometry; say so in
        # one line instead of a traceback (every zoo model is covered by tests).
        raise CnnlabError(f"model: cannot inspect {cfg.model._target_} ({err})") from None
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    return {
        "model": choices.get("model", str(cfg.model._target_)),
        "data": choices.get("data", datamodule.name),
        "experiment": choices.get("experiment"),
        "input_shape": list(shape),
        "num_classes": kwargs["num_classes"],
        "params": info["params"],
        "trainable_params": info["trainable_params"],
        "macs": info["macs"],
        "receptive_field": info["receptive_field"],
        "layers": info["layers"],
    }


def report(result: dict[str, Any], max_depth: int = -1) -> str:
    """The inspector's printout: layer table, totals, then the JSON line (always last)."""
    layers = result["layers"]
    if max_depth > 0:  # as in ModelSummary: 1 lists the top-level modules only
        layers = [row for row in layers if row.name.count(".") < max_depth]
    c, h, w = result["input_shape"]
    summary = {k: v for k, v in result.items() if k != "layers"}
    lines = [
        f"{result['model']} on {result['data']}: input {c}x{h}x{w}, "
        f"{result['num_classes']} classes (out_shape includes a batch of 1)",
        "",
        format_layer_table(layers),
        "",
        f"params:           {result['params']:,} ({result['trainable_params']:,} trainable)",
        f"MACs per image:   {result['macs']:,}",
        f"receptive field:  {result['receptive_field']} px (final feature map, largest path)",
        json.dumps(summary),
    ]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="inspect")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    print(report(inspect_config(cfg), int(cfg.get("max_depth", -1))), flush=True)


if __name__ == "__main__":
    main()
