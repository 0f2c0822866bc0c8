"""BlockNet: a stack of branch-attention blocks followed by a pooled MLP head.

Each intermediate block runs L parallel conv branches on the same input and mixes their
outputs with per-sample weights ``a = softmax(FC(channel means of the block input))``.
The block therefore chooses, image by image, how much of each branch (e.g. a 1x1, a 3x3
and a 5x5 conv) to use: a cheap form of attention over branches, in the spirit of
selective-kernel networks, but with the gate computed from the block *input*.

Downsampling happens at chosen blocks, either by giving every branch of that block
stride 2 or by a 2x2 max-pool on the block input; either way the branches of the block run
at the reduced resolution, which is what keeps six blocks cheap on 32x32 images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BlockNet", "BranchAttentionBlock"]

Downsample = Literal["stride", "maxpool"]


class BranchAttentionBlock(nn.Module):
    """L parallel ``conv -> [BN] -> ReLU`` branches mixed by softmax weights.

    The gate sees only the channel means of the block input (a global pool), so it adds
    ``C_in * L + L`` parameters and no spatial context of its own; the receptive field of
    the block is that of its largest conv branch (see
    :func:`cnnlab.reporting.inspection.receptive_field`).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_sizes: Sequence[int],
        *,
        batch_norm: bool,
        downsample: Downsample | None,
    ) -> None:
        super().__init__()
        stride = 2 if downsample == "stride" else 1
        # Trick: a 2x2 max-pool *before* the branches makes every branch (and the gate) run
        # at half resolution, a quarter of the MACs of pooling afterwards.
        self.pool: nn.Module = nn.MaxPool2d(2) if downsample == "maxpool" else nn.Identity()
        self.branches = nn.ModuleList()
        for k in kernel_sizes:
            # Odd kernels with padding k // 2 give every branch the same output size, also
            # at stride 2, so the branches can be summed.
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=not batch_norm)
            ]
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
            self.branches.append(nn.Sequential(*layers))
        self.gate = nn.Linear(c_in, len(kernel_sizes))

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the block output and the branch weights ``a`` of shape (N, L)."""
        x = self.pool(x)
        a = F.softmax(self.gate(x.mean(dim=(2, 3))), dim=1)
        out = a[:, 0, None, None, None] * self.branches[0](x)
        for i, branch in enumerate(self.branches[1:], start=1):
            out = out + a[:, i, None, None, None] * branch(x)
        return out, a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_weights(x)[0]


class BlockNet(nn.Module):
    """Branch-attention blocks, then channel means and an MLP head with dropout.

    Args:
        in_channels: image channels.
        num_classes: number of logits.
        image_size: side of the square input (checked against the number of downsamplings).
        num_blocks: number of intermediate blocks.
        channels: output channels per block; an int means the same for every block.
        kernel_sizes: one (odd) kernel size per branch; its length is the branch count L.
        num_branches: optional check on ``len(kernel_sizes)``; when given with a single
            kernel size, that kernel is repeated ``num_branches`` times.
        downsample_at: 0-based indices of the blocks that halve the resolution.
        downsample: ``stride`` (stride-2 branch convs) or ``maxpool`` (2x2 pool on the input).
        batch_norm: BatchNorm after each branch conv.
        hidden_features: widths of the hidden FC layers of the output block (may be empty).
        dropout: dropout before every FC layer of the output block.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        num_blocks: int = 6,
        channels: int | Sequence[int] = (32, 32, 64, 64, 128, 128),
        kernel_sizes: Sequence[int] = (1, 3, 5),
        num_branches: int | None = None,
        downsample_at: Sequence[int] = (2, 4),
        downsample: Downsample = "stride",
        batch_norm: bool = True,
        hidden_features: Sequence[int] = (256,),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        widths = [int(channels)] * num_blocks if isinstance(channels, int) else list(channels)
        widths = [int(c) for c in widths]
        kernels = [int(k) for k in kernel_sizes]
        if num_branches is not None:
            if len(kernels) == 1:
                kernels = kernels * num_branches
            if len(kernels) != num_branches:
                raise ValueError(f"num_branches={num_branches} but kernel_sizes={kernels}")
        down = sorted({int(i) for i in downsample_at})
        if len(widths) != num_blocks:
            raise ValueError(f"channels has {len(widths)} entries for {num_blocks} blocks")
        if not kernels or any(k % 2 == 0 for k in kernels):
            raise ValueError(f"kernel_sizes must be non-empty and odd, got {kernels}")
        if any(not 0 <= i < num_blocks for i in down):
            raise ValueError(f"downsample_at={down} must index blocks 0..{num_blocks - 1}")
        if downsample not in ("stride", "maxpool"):
            raise ValueError(f"downsample must be 'stride' or 'maxpool', got {downsample!r}")
        if image_size < 2 ** len(down):
            raise ValueError(f"image_size={image_size} too small for {len(down)} downsamplings")
        self.input_shape = (in_channels, image_size, image_size)
        self.num_branches = len(kernels)

        blocks = []
        c_in = in_channels
        for i, c_out in enumerate(widths):
            blocks.append(
                BranchAttentionBlock(
                    c_in,
                    c_out,
                    kernels,
                    batch_norm=batch_norm,
                    downsample=downsample if i in down else None,
                )
            )
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)

        head: list[nn.Module] = []
        for h in (int(h) for h in hidden_features):
            head += [nn.Dropout(dropout), nn.Linear(c_in, h), nn.ReLU(inplace=True)]
            c_in = h
        head += [nn.Dropout(dropout), nn.Linear(c_in, num_classes)]
        self.head = nn.Sequential(*head)

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return the logits and, per block, the branch weights ``a`` of shape (N, L).

        Kept stateless (no "last weights" attribute written in ``forward``) so that the
        model stays friendly to torch.fx / torch.compile; call this to log or test ``a``.
        """
        weights = []
        for block in self.blocks:
            x, a = block.forward_with_weights(x)
            weights.append(a)
        # Output block: channel means (global average pool), then the MLP head.
        return self.head(x.mean(dim=(2, 3))), weights

    def branch_weights(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-block branch weights ``a`` (N, L) for input ``x``; each row sums to 1."""
        return self.forward_with_weights(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_weights(x)[0]
