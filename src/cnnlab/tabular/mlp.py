"""A multilayer perceptron for tabular rows (and, flattened, for images as a baseline).

Each hidden block is Linear -> norm -> activation -> dropout. Tabular data modules pass
`in_features`/`num_outputs` (and, for regression, the training-split target mean/std);
image data modules pass `in_channels`/`num_classes`/`image_size` and the image is flattened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

# Per-feature normalisation of a hidden layer's activations; "none" for a plain MLP.
NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm1d,
    "layer": nn.LayerNorm,
    "none": lambda width: nn.Identity(),
}


class MLP(nn.Module):
    """Fully connected network; `hidden` lists the widths of the hidden layers."""

    def __init__(
        self,
        in_features: int | None = None,
        num_outputs: int | None = None,
        hidden: Sequence[int] = (64, 64),
        activation: str = "ReLU",
        dropout: float = 0.0,
        norm: str = "none",
        target_mean: float = 0.0,
        target_std: float = 1.0,
        in_channels: int | None = None,
        num_classes: int | None = None,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        if in_features is None and in_channels is not None and image_size is not None:
            in_features = in_channels * image_size * image_size
            self.input_shape: tuple[int, ...] = (in_channels, image_size, image_size)
        elif in_features is not None:
            self.input_shape = (in_features,)
        else:
            raise ValueError("MLP needs in_features (tabular) or in_channels + image_size")
        outputs = num_outputs if num_outputs is not None else num_classes
        if outputs is None:
            raise ValueError("MLP needs num_outputs (tabular) or num_classes (images)")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)} (got {norm!r})")
        act = getattr(nn, activation, None)
        if not (isinstance(act, type) and issubclass(act, nn.Module)):
            raise ValueError(
                f"activation must name a torch.nn activation, e.g. ReLU, GELU (got {activation!r})"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) (got {dropout})")

        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), NORMS[norm](h), act(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, outputs))
        self.net = nn.Sequential(*layers)
        # Target scaling folded into the output: the layers learn a standardised target, the
        # model speaks the target's own units (identity for classification logits).
        self.register_buffer("output_scale", torch.tensor(float(target_std)))
        self.register_buffer("output_shift", torch.tensor(float(target_mean)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.output_scale + self.output_shift
