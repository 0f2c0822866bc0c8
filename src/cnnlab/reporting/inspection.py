"""Model inspection computed from the actual modules: params, MACs, receptive field, layers.

Every figure here is measured on the module as built (no hand-maintained tables), so a
change to a model cannot silently leave its reported numbers stale:

* :func:`count_macs` runs one image under torch's own ``FlopCounterMode``;
* :func:`receptive_field` composes kernel/stride/dilation over a ``torch.fx`` trace;
* :func:`layer_table` is Lightning's ``ModelSummary`` (project rule: use it where it does
  the job);
* :func:`inspect_model` bundles them.

``input_shape`` is ``(C, H, W)`` (or ``(F,)`` for a model of feature vectors) without the
batch dimension; when omitted, the model's ``input_shape`` attribute (set by every cnnlab
model) is used.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import lightning.pytorch as pl
import torch
import torch.fx
from lightning.pytorch.utilities.model_summary import ModelSummary
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "LayerRow",
    "count_macs",
    "count_params",
    "format_layer_table",
    "inspect_model",
    "layer_table",
    "receptive_field",
]


# ----------------------------------------------------------------------------- helpers


def _resolve_shape(model: nn.Module, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError("pass input_shape=(C, H, W) or give the model an `input_shape` attribute")
    shape = tuple(int(s) for s in shape)
    # (C, H, W) for images; (F,) for models of feature vectors (the tabular MLP), which have
    # params, MACs and layers but no receptive field.
    if len(shape) not in (1, 3):
        raise ValueError(f"input_shape must be (C, H, W) or (F,) without batch dim, got {shape}")
    return shape


def _example_input(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    """One zero image on the model's device/dtype (a batch of one: figures are per image)."""
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    return torch.zeros(1, *shape, device=device, dtype=dtype)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration, then restore *each* module's own flag.

    Why: ``model.train(was_training)`` would also flip submodules that the caller froze on
    purpose; eval also keeps BN running stats untouched and lets a batch of one through.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ----------------------------------------------------------------------------- MACs


def count_macs(model: nn.Module, input_shape: Sequence[int] | None = None) -> int:
    """Multiply-accumulates for one image of ``input_shape``, as MACs = FLOPs / 2.

    Uses ``torch.utils.flop_counter.FlopCounterMode`` rather than hand-written hooks: it
    counts at the aten level (convolution, mm/addmm/bmm, attention) so grouped/dilated/
    strided convs and functional calls are all covered, and it counts one MAC as 2 FLOPs.
    As is conventional for CNN MAC figures, elementwise work (norms, activations, pooling,
    bias adds, residual sums) is not counted.
    """
    shape = _resolve_shape(model, input_shape)
    x = _example_input(model, shape)
    counter = FlopCounterMode(display=False)
    with _eval_mode(model), torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops()) // 2


# ----------------------------------------------------------------------------- receptive field


@dataclass(frozen=True)
class _Geom:
    """Receptive field of one spatial tensor in the traced graph, per axis (H, W).

    ``size``: side of the input region that one position of this map sees.
    ``jump``: input-pixel distance between neighbouring positions of this map.
    ``hw``: spatial size of this map at the probe input (only used to classify unknown ops).
    """

    size: tuple[int, int]
    jump: tuple[int, int]
    hw: tuple[int, int]


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v))


def _arg(node: torch.fx.Node, index: int, name: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _tensor_meta(node: torch.fx.Node) -> TensorMetadata | None:
    meta = node.meta.get("tensor_meta")
    return meta if isinstance(meta, TensorMetadata) else None


def _window(node: torch.fx.Node, gm: torch.fx.GraphModule) -> tuple[Any, Any, Any] | None:
    """(kernel, stride, dilation) of a sliding-window op, or None if the node is not one."""
    if node.op == "call_module":
        mod = gm.get_submodule(str(node.target))
        if isinstance(mod, nn.Conv2d):
            return mod.kernel_size, mod.stride, mod.dilation
        if isinstance(mod, nn.MaxPool2d):
            return mod.kernel_size, mod.stride or mod.kernel_size, mod.dilation
        if isinstance(mod, (nn.AvgPool2d, nn.LPPool2d)):
            return mod.kernel_size, mod.stride or mod.kernel_size, 1
        return None
    if node.op != "call_function":
        return None
    fname = getattr(node.target, "__name__", "")
    if fname in ("max_pool2d", "avg_pool2d"):
        kernel = _arg(node, 1, "kernel_size", None)
        stride = _arg(node, 2, "stride", None) or kernel
        dilation = _arg(node, 4, "dilation", 1) if fname == "max_pool2d" else 1
        return kernel, stride, dilation
    if fname == "conv2d":
        weight = node.args[1] if len(node.args) > 1 else node.kwargs["weight"]
        w_meta = _tensor_meta(weight) if isinstance(weight, torch.fx.Node) else None
        if w_meta is None:
            raise NotImplementedError(f"receptive_field: cannot read the weight of {node}")
        return tuple(w_meta.shape[-2:]), _arg(node, 3, "stride", 1), _arg(node, 5, "dilation", 1)
    return None


def _is_global_pool(node: torch.fx.Node, gm: torch.fx.GraphModule) -> bool:
    """Adaptive pools end the spatial part whatever their output size (head boundary)."""
    adaptive = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    if node.op == "call_module":
        return isinstance(gm.get_submodule(str(node.target)), adaptive)
    name = getattr(node.target, "__name__", "")
    return node.op == "call_function" and name.startswith("adaptive_") and name.endswith("pool2d")


def receptive_field(model: nn.Module, input_shape: Sequence[int] | None = None) -> int:
    """Theoretical receptive field (input pixels, one side) of the final spatial feature map.

    Method, and why: analytic composition over a ``torch.fx`` trace. Each spatial tensor
    carries ``(size, jump)``; a sliding window (conv / pool, module or functional) with
    kernel k, stride s, dilation d maps it to ``size + (k - 1) * d * jump`` and
    ``jump * s``; an op joining several spatial tensors (residual add, concat, branch sum)
    takes the largest, so residual and parallel branches count their largest path. This
    is exact, independent of padding and weights by construction, and costs one traced
    forward; a gradient-support probe would need the model rewritten (positive weights,
    ReLU/MaxPool/norm swapped out, gates detached) and an input large enough for padding
    not to matter, which a fixed-size flatten head (AlexNet) does not even accept.

    Non-spatial paths are ignored: a tensor is "spatial" only if it descends from the image
    through ops that keep a (H, W) layout. Global pools (adaptive pools, means over H, W,
    flatten/view to rank < 3, or any op that collapses H x W to 1 x 1) end the spatial
    part; what they produce - e.g. BlockNet's branch weights softmax(FC(channel means)) -
    only rescales maps and adds nothing to the receptive field. We count conv paths only,
    so that a gate does not make every answer "the whole image". For the same reason
    normalisation statistics (GroupNorm/LayerNorm pool over the map) are not counted.

    The reported value is the largest receptive field among the maps that enter such a
    global pool (the final feature map, e.g. ResNet's layer4 output or AlexNet's last
    pool), or of the model output if that is still spatial. It may exceed the image: it is
    the theoretical field, not the part of it that lies on real pixels.

    Ops that change H x W in ways not modelled here (upsampling, cropping, unknown pools)
    raise ``NotImplementedError`` rather than return a silently wrong number.
    """
    shape = _resolve_shape(model, input_shape)
    if len(shape) != 3:
        raise ValueError(f"receptive_field needs an image input (C, H, W), got {shape}")
    probe = copy.deepcopy(model)  # tracing may touch module state; never touch the caller's
    try:
        gm = torch.fx.symbolic_trace(probe)
    except Exception as err:  # re-raised with context: fx gives terse errors
        raise RuntimeError(f"receptive_field needs an fx-traceable model: {err}") from err
    with _eval_mode(gm), torch.no_grad():
        ShapeProp(gm).propagate(_example_input(gm, shape))

    geom: dict[torch.fx.Node, _Geom | None] = {}
    final: list[_Geom] = []  # spatial maps that enter a global pool, or the spatial output
    seen_image = False
    for node in gm.graph.nodes:
        meta = _tensor_meta(node)
        if node.op == "placeholder":
            # The first input is the image; any other input is not spatial.
            is_image = not seen_image and meta is not None and len(meta.shape) == 4
            seen_image = True
            hw = (int(meta.shape[-2]), int(meta.shape[-1])) if is_image and meta else (0, 0)
            geom[node] = _Geom((1, 1), (1, 1), hw) if is_image else None
            continue
        inputs = [g for n in node.all_input_nodes if (g := geom.get(n)) is not None]
        if node.op == "output":
            final += inputs
            continue
        if not inputs:
            geom[node] = None
            continue
        size = (max(g.size[0] for g in inputs), max(g.size[1] for g in inputs))
        jump = (max(g.jump[0] for g in inputs), max(g.jump[1] for g in inputs))
        if meta is None:
            # Non-tensor results (x.size(), tuples...) carry the geometry along only if they
            # hold tensors; getitem on them is classified by its own shape below.
            holds_tensors = isinstance(node.meta.get("tensor_meta"), (tuple, list))
            geom[node] = _Geom(size, jump, inputs[0].hw) if holds_tensors else None
            continue
        out_hw = (int(meta.shape[-2]), int(meta.shape[-1])) if len(meta.shape) >= 2 else (0, 0)

        window = _window(node, gm)
        if window is not None:
            k, s, d = (_pair(v) for v in window)
            size = (size[0] + (k[0] - 1) * d[0] * jump[0], size[1] + (k[1] - 1) * d[1] * jump[1])
            jump = (jump[0] * s[0], jump[1] * s[1])
            geom[node] = _Geom(size, jump, out_hw)
            continue

        in_hws = {g.hw for g in inputs}
        collapsed = out_hw == (1, 1) and (1, 1) not in in_hws
        if _is_global_pool(node, gm) or len(meta.shape) < 3 or collapsed:
            final += inputs
            geom[node] = None
        elif out_hw in in_hws:
            geom[node] = _Geom(size, jump, out_hw)  # pointwise / channel op: geometry kept
        else:
            raise NotImplementedError(
                f"receptive_field: {node.op} {node.target} maps H x W {sorted(in_hws)} to "
                f"{out_hw}; its geometry is not modelled"
            )
    if not final:
        raise ValueError("receptive_field: no spatial feature map reaches the output")
    return max(max(g.size) for g in final)


# ----------------------------------------------------------------------------- layer table


class LayerRow(NamedTuple):
    name: str
    type: str
    out_shape: Any  # e.g. [1, 64, 32, 32]; "?" for a module not called in forward
    params: int


class _SummaryWrapper(pl.LightningModule):
    """Minimal LightningModule so that ``ModelSummary`` can run ``example_input_array``."""

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.example_input_array = example

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)


def layer_table(
    model: nn.Module, input_shape: Sequence[int] | None = None, max_depth: int = -1
) -> list[LayerRow]:
    """Rows (name, type, output shape, params) for every submodule, from Lightning's
    ``ModelSummary`` run on one example image (batch dim 1 in the shapes).

    Containers are listed too (their params include their children's), so the table reads
    as a tree; ``max_depth`` trims it as in ``ModelSummary``. The root itself is left out:
    its totals are ``count_params``.
    """
    shape = _resolve_shape(model, input_shape)
    wrapper = _SummaryWrapper(model, _example_input(model, shape))
    summary = ModelSummary(wrapper, max_depth=max_depth if max_depth < 0 else max_depth + 1)
    rows = []
    for name, type_, out, n in zip(
        summary.layer_names, summary.layer_types, summary.out_sizes, summary.param_nums, strict=True
    ):
        if name == "model":
            continue
        rows.append(LayerRow(name.removeprefix("model."), type_, out, int(n)))
    return rows


def format_layer_table(rows: Sequence[LayerRow]) -> str:
    """Plain-text rendering of :func:`layer_table` rows (for logs and the CLI)."""
    head = ("name", "type", "out_shape", "params")
    cells = [head] + [(r.name, r.type, str(r.out_shape), f"{r.params:,}") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(4)).rstrip() for c in cells)


# ----------------------------------------------------------------------------- all together


def inspect_model(model: nn.Module, input_shape: Sequence[int] | None = None) -> dict[str, Any]:
    """Everything above for one model: params, trainable_params, macs, receptive_field
    (None for a feature-vector model), layers (``LayerRow`` list) and the input_shape used."""
    shape = _resolve_shape(model, input_shape)
    return {
        "input_shape": shape,
        "params": count_params(model),
        "trainable_params": count_params(model, trainable_only=True),
        "macs": count_macs(model, shape),
        "receptive_field": receptive_field(model, shape) if len(shape) == 3 else None,
        "layers": layer_table(model, shape),
    }
