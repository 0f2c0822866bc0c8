"""The stage-3 augmentation (flip, shift/scale/rotate, one coarse-dropout square), batched.

The same random transforms as the albumentations pipeline of `augment=albumentations`, drawn
per image but applied to the whole batch at once:
- horizontal flip with probability `flip_p`;
- with probability `affine_p`, albumentations' `Affine` about the image centre: rotation
  uniform in ±`rotate` degrees, x and y scales drawn independently, uniform in
  1 ± `scale`, a shift of `shift` x size at most in x and in y (uniform, then truncated to
  whole pixels, as albumentations does), bilinear, zero outside the image. All affine images
  are resampled by one `affine_grid` + `grid_sample`; the flip of an affine image is folded
  into its matrix;
- with probability `dropout_p`, one `dropout_size` square set to `fill`, placed uniformly so
  that it lies inside the image (albumentations' CoarseDropout placement), as one scatter.

Every draw (a fixed number per image, whatever it decides) comes from the DataModule's CPU
generator, so a resumed run continues the same stream exactly, as with FlipCrop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from cnnlab.augment.batch import random_corners, to_device


@dataclass
class AffineDraws:
    """One batch's random decisions and parameters (CPU tensors, one entry per image)."""

    flip: torch.Tensor  # bool
    affine: torch.Tensor  # bool
    angle: torch.Tensor  # degrees
    scale_x: torch.Tensor
    scale_y: torch.Tensor
    shift_x: torch.Tensor  # whole pixels
    shift_y: torch.Tensor
    dropout: torch.Tensor  # bool
    corner_y: torch.Tensor
    corner_x: torch.Tensor

    def take(self, index: torch.Tensor) -> AffineDraws:
        """The draws of the images at `index`."""
        return AffineDraws(*(getattr(self, f.name)[index] for f in fields(self)))


def inverse_theta(draws: AffineDraws, height: int, width: int) -> torch.Tensor:
    """N x 2 x 3 `affine_grid` matrices (output -> input, normalised coordinates).

    albumentations maps a source pixel p to c + t + R S (p - c) (c: the centre, R: rotation,
    S: scales, t: the shift) and cv2 samples the source at the inverse of that. In
    `affine_grid`'s coordinates (align_corners=False: u = 2 (p - c) / size) the inverse is
    u_src = D A^-1 D^-1 u_dst - D A^-1 t with A = R S, D = diag(2/W, 2/H). A flipped image
    is the source read at (-u_x, u_y): its first row is negated.
    """
    radians = draws.angle.double() * math.pi / 180
    cos, sin = radians.cos(), radians.sin()
    sx, sy = draws.scale_x.double(), draws.scale_y.double()
    # A = R S with R = [[cos, sin], [-sin, cos]] (albumentations' convention), inverted.
    det = sx * sy
    a_inv = torch.stack(
        [
            torch.stack([cos * sy, -sin * sy], -1),
            torch.stack([sin * sx, cos * sx], -1),
        ],
        -2,
    ) / det.view(-1, 1, 1)
    d = torch.tensor([2.0 / width, 2.0 / height], dtype=torch.float64)
    linear = d.view(1, 2, 1) * a_inv / d.view(1, 1, 2)
    shift = torch.stack([draws.shift_x, draws.shift_y], -1).double()
    offset = -(d.view(1, 2) * (a_inv @ shift.unsqueeze(-1)).squeeze(-1))
    theta = torch.cat([linear, offset.unsqueeze(-1)], -1)
    theta[:, 0] = torch.where(draws.flip.view(-1, 1), -theta[:, 0], theta[:, 0])
    return theta.float()


class FlipAffineCutout:
    """Batched flip + random affine (shift, scale, rotate) + one coarse-dropout square."""

    sample_transform = None

    def __init__(
        self,
        flip_p: float = 0.5,
        shift: float = 0.1,
        scale: float = 0.1,
        rotate: float = 15.0,
        affine_p: float = 0.5,
        dropout_size: int = 16,
        dropout_p: float = 0.3,
        fill: float = 0.0,
    ) -> None:
        for name, value in (("flip_p", flip_p), ("affine_p", affine_p), ("dropout_p", dropout_p)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} must be a probability in [0, 1] (got {value})")
        if not 0.0 <= shift < 1.0:
            raise ValueError(
                f"augment.shift must be a fraction of the size in [0, 1) (got {shift})"
            )
        if not 0.0 <= scale < 1.0:
            raise ValueError(f"augment.scale must be in [0, 1): scales 1 ± scale (got {scale})")
        if not 0.0 <= rotate <= 180.0:
            raise ValueError(f"augment.rotate must be degrees in [0, 180] (got {rotate})")
        if dropout_size < 0:
            raise ValueError(f"augment.dropout_size must be >= 0 (got {dropout_size})")
        if not 0.0 <= fill <= 1.0:
            raise ValueError(f"augment.fill must be a fraction in [0, 1] (got {fill})")
        self.flip_p = flip_p
        self.shift = shift
        self.scale = scale
        self.rotate = rotate
        self.affine_p = affine_p
        self.dropout_size = dropout_size
        self.dropout_p = dropout_p
        self.fill = round(255 * fill)

    def draw(self, n: int, height: int, width: int, generator: torch.Generator) -> AffineDraws:
        """Ten numbers per image, always: the stream does not depend on what was decided."""

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)

        flip = torch.rand(n, generator=generator) < self.flip_p
        affine = torch.rand(n, generator=generator) < self.affine_p
        angle = uniform(-self.rotate, self.rotate)
        scale_x = uniform(1 - self.scale, 1 + self.scale)
        scale_y = uniform(1 - self.scale, 1 + self.scale)
        shift_x = (uniform(-self.shift, self.shift) * width).trunc()
        shift_y = (uniform(-self.shift, self.shift) * height).trunc()
        dropout = torch.rand(n, generator=generator) < self.dropout_p
        size = min(self.dropout_size, height, width)
        corner_y, corner_x = random_corners(n, size, height, width, generator)
        return AffineDraws(
            flip, affine, angle, scale_x, scale_y, shift_x, shift_y, dropout, corner_y, corner_x
        )

    def apply(self, images: torch.Tensor, draws: AffineDraws) -> torch.Tensor:
        """The drawn transforms on a uint8 N x C x H x W batch (a new tensor).

        Mirrored and warped images are computed for their subsets only, then every output
        row is gathered from [batch, warped, mirrored] at once; the squares are one fill.
        """
        n, c, h, w = images.shape
        device = images.device
        rows = torch.arange(n)
        parts = [images]
        chosen = draws.affine.nonzero().flatten()  # affine (a flip folded into the matrix)
        if len(chosen):
            theta = to_device(inverse_theta(draws.take(chosen), h, w), device)
            source = images.index_select(0, to_device(chosen, device)).float()
            grid = F.affine_grid(theta, list(source.shape), align_corners=False)
            warped = F.grid_sample(
                source, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
            # Bilinear weights are convex: the values stay in [0, 255].
            parts.append(warped.round_().to(images.dtype))
            rows[chosen] = n + torch.arange(len(chosen))
        mirrored = (draws.flip & ~draws.affine).nonzero().flatten()
        if len(mirrored):
            parts.append(images.index_select(0, to_device(mirrored, device)).flip(-1))
            rows[mirrored] = n + len(chosen) + torch.arange(len(mirrored))
        out = (
            torch.cat(parts).index_select(0, to_device(rows, device))
            if len(parts) > 1
            else (images.clone())
        )
        holes = draws.dropout.nonzero().flatten()
        size = min(self.dropout_size, h, w)
        if len(holes) and size:
            side = torch.arange(size)
            ys = draws.corner_y[holes].view(-1, 1, 1) + side.view(1, -1, 1)
            xs = draws.corner_x[holes].view(-1, 1, 1) + side.view(1, 1, -1)
            pixels = (ys * w + xs).view(-1, 1, size * size)
            planes = (holes.view(-1, 1, 1) * c + torch.arange(c).view(1, -1, 1)) * (h * w)
            out.view(-1).index_fill_(0, to_device((planes + pixels).flatten(), device), self.fill)
        return out

    def batch(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        index: torch.Tensor | None = None,
        epoch: int = 0,
    ) -> torch.Tensor:
        n, _, h, w = images.shape
        return self.apply(images, self.draw(n, h, w, generator))
