"""AirbenchNet: the network of Keller Jordan's airbench (arXiv 2404.00498) as a suite model.

    whitening conv (2x2, frozen) -> GELU -> 3 x ConvBlock -> global max-pool -> linear / 9

Each trick is a constructor switch (and so a `model.*` override):

- `whiten`: the first conv is a *whitening* layer: its 2*C*k*k filters are the eigenvectors
  of the covariance of k x k training patches scaled by 1/sqrt(eigenvalue + eps), and their
  negatives (so GELU passes both signs). Its weights stay frozen; its bias trains (freeze
  it after a few epochs with the `FreezeAfterEpochs` callback). The init needs training
  images, so it happens in `init_from_data`, called by `ClassificationModule.setup` at fit
  start. The net then starts from decorrelated, unit-variance inputs: airbench's biggest
  single speed-up. `whiten=false` gives an ordinary trainable conv of the same shape.
- `dirac_init`: every 3x3 conv starts with identity filters in its first C_in outputs, an
  implicit residual that makes the plain (non-residual) stack train fast.
- `batchnorm_momentum`, `batchnorm_weight`: BatchNorm with airbench's running-average
  weight 0.6 (torch momentum 0.4) and no trainable scale (only the shift trains).
- `bias_lr_scale`: tags each BatchNorm bias with `lr_scale` (64 in airbench): the
  `cnnlab.recipes.airbench.optim.scaled_sgd` optimizer gives tagged parameters that multiple of the
  learning rate (and divides their weight decay by it, keeping decay per step unchanged).
  `whiten_bias_lr_scale` tags the whitening conv's bias the same way (airbench94_muon: 64;
  airbench94 trains it at the base rate); `optim=muon` reads the same tags.
- `convs_per_block`: 2 (airbench94) or 3 (airbench96: the last two convs of each block
  wrapped in a residual connection).
- `logit_scale`: the final logits are multiplied by 1/9, a temperature that suits the
  label-smoothed loss.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AirbenchNet", "ConvBlock", "WhiteningConv", "patch_covariance"]

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


def patch_covariance(images: torch.Tensor, kernel_size: int, chunk: int = 512) -> torch.Tensor:
    """Second-moment matrix (D x D, D = C*k*k, float64) of every k x k patch of `images`.

    Accumulated in chunks of images so the N*L x D patch matrix is never built whole; each
    chunk is one float32 matmul (an einsum in float64 was 50x slower on CPU), summed in
    float64. The images are normalised (mean ~0), so this is the patch covariance, as in
    airbench.
    """
    dim = images.shape[1] * kernel_size * kernel_size
    total = torch.zeros(dim, dim, dtype=torch.float64, device=images.device)
    count = 0
    for part in images.split(chunk):
        patches = F.unfold(part.float().contiguous(), kernel_size)  # n x D x L
        flat = patches.transpose(0, 1).reshape(dim, -1)  # D x (n * L)
        total += (flat @ flat.T).double()
        count += flat.shape[1]
    return total / count


class WhiteningConv(nn.Conv2d):
    """k x k conv whose filters whiten the patch distribution (eigenvectors and negatives)."""

    def __init__(self, in_channels: int, kernel_size: int = 2, eps: float = 5e-4) -> None:
        super().__init__(in_channels, 2 * in_channels * kernel_size**2, kernel_size, bias=True)
        self.eps = eps
        nn.init.zeros_(self.bias)
        self.weight.requires_grad_(False)  # frozen: the whitening is a fixed transform

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> None:
        """Set the filters from normalised training images (N x C x H x W)."""
        k, c = self.kernel_size[0], self.in_channels
        eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images, k))
        # Largest component first; eigenvectors are the columns of `eigenvectors`.
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
        filters = eigenvectors.T / torch.sqrt(eigenvalues.clamp(min=0) + self.eps)[:, None]
        filters = filters.reshape(-1, c, k, k).to(self.weight.dtype)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight.device))


def batch_norm(channels: int, momentum: float, train_weight: bool, lr_scale: float) -> nn.Module:
    """airbench's BatchNorm: running average weight `momentum`, frozen scale, tagged shift."""
    norm = nn.BatchNorm2d(channels, eps=1e-12, momentum=1.0 - momentum)
    norm.weight.requires_grad_(train_weight)
    norm.bias.lr_scale = lr_scale  # read by cnnlab.recipes.airbench.optim.scaled_sgd
    return norm


class ConvBlock(nn.Module):
    """conv3x3 -> maxpool2 -> BN -> act -> conv3x3 -> BN -> act [-> conv3x3 -> BN, + skip, act]."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        convs: int,
        activation: str,
        dirac_init: bool,
        batchnorm_momentum: float,
        batchnorm_weight: bool,
        bias_lr_scale: float,
    ) -> None:
        super().__init__()
        if convs not in (2, 3):
            raise ValueError(f"model.convs_per_block must be 2 or 3 (got {convs})")
        channels = [c_in] + [c_out] * convs
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in itertools.pairwise(channels)
        )
        self.norms = nn.ModuleList(
            batch_norm(c_out, batchnorm_momentum, batchnorm_weight, bias_lr_scale)
            for _ in range(convs)
        )
        self.pool = nn.MaxPool2d(2)
        self.act = ACTIVATIONS[activation]()
        self.residual = convs == 3
        if dirac_init:
            for conv in self.convs:
                # Identity filters for the first C_in outputs: an implicit residual at init.
                nn.init.dirac_(conv.weight.data[: conv.in_channels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norms[0](self.pool(self.convs[0](x))))
        if not self.residual:
            return self.act(self.norms[1](self.convs[1](x)))
        skip = x
        x = self.act(self.norms[1](self.convs[1](x)))
        return self.act(self.norms[2](self.convs[2](x)) + skip)


class AirbenchNet(nn.Module):
    """The airbench network; `widths` and `convs_per_block` give airbench94 / airbench96."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        widths: Sequence[int] = (64, 256, 256),
        convs_per_block: int = 2,
        whiten: bool = True,
        whiten_kernel_size: int = 2,
        whiten_eps: float = 5e-4,
        dirac_init: bool = True,
        batchnorm_momentum: float = 0.6,
        batchnorm_weight: bool = False,
        bias_lr_scale: float = 64.0,
        whiten_bias_lr_scale: float = 1.0,
        activation: str = "gelu",
        logit_scale: float = 1 / 9,
    ) -> None:
        super().__init__()
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"model.widths must be 3 positive ints (got {list(widths)})")
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.activation must be one of {', '.join(ACTIVATIONS)}")
        if image_size - whiten_kernel_size + 1 < 8:
            raise ValueError(f"image_size {image_size} is too small for three 2x2 poolings")
        self.input_shape = (in_channels, image_size, image_size)
        self.whiten = whiten
        stem_width = 2 * in_channels * whiten_kernel_size**2
        if whiten:
            self.stem: nn.Conv2d = WhiteningConv(in_channels, whiten_kernel_size, whiten_eps)
        else:
            self.stem = nn.Conv2d(in_channels, stem_width, whiten_kernel_size)
        self.stem.bias.lr_scale = whiten_bias_lr_scale
        self.stem_act = ACTIVATIONS[activation]()
        block_kwargs = {
            "convs": convs_per_block,
            "activation": activation,
            "dirac_init": dirac_init,
            "batchnorm_momentum": batchnorm_momentum,
            "batchnorm_weight": batchnorm_weight,
            "bias_lr_scale": bias_lr_scale,
        }
        ins = [stem_width, *widths[:2]]
        self.blocks = nn.Sequential(
            *(ConvBlock(a, b, **block_kwargs) for a, b in zip(ins, widths, strict=True))
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.logit_scale = logit_scale

    def init_from_data(self, images: torch.Tensor) -> None:
        """Whitening init of the stem from normalised training images (no-op unless whiten)."""
        if self.whiten:
            self.stem.init_from_data(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem_act(self.stem(images)))
        return self.head(self.pool(x).flatten(1)) * self.logit_scale
