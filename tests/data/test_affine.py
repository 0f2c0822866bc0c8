"""The batched stage-3 augmentation (flip_affine_cutout) against albumentations' per-sample one.

Per-sample statistics are measured on a fixed synthetic batch whose every image is the plane
v = 40 + 4x + 2y (no zero pixel, so zeros can only come from the fill or the hole): the sign
of the fitted x-gradient tells a flip, a difference from the (un)flipped original an affine
transform, an all-zero 16x16 window the dropout square; the fitted gradient's angle and
length, the value at the centre and the zero fraction follow rotation, scale and shift.
Tolerances are 4 standard errors at N images per implementation (a deterministic test that
would fail by chance about once in 15,000 seeds); distributions are compared with a
two-sample Kolmogorov-Smirnov test at p > 1e-3.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import ks_2samp

from cnnlab.augment import AlbumentationsRecipe, FlipAffineCutout
from cnnlab.errors import CnnlabError
from cnnlab.training.build import build

N, SIZE, HOLE = 4000, 32, 16


def plane_batch(n: int = N, size: int = SIZE, channels: int = 3) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    plane = (40 + 4 * x + 2 * y).to(torch.uint8)
    return plane.expand(n, channels, size, size).contiguous()


def features(out: torch.Tensor, original: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image statistics of an augmented plane batch (channel 0)."""
    v = out[:, 0].double()
    _, h, w = v.shape
    zero = v == 0
    hole = F.avg_pool2d(zero[:, None].double(), HOLE, stride=1).flatten(1).amax(1) == 1
    # Least-squares plane v = a + b (x - c) + e (y - c) over the pixels away from zero fill.
    y, x = torch.meshgrid(torch.arange(h).double(), torch.arange(w).double(), indexing="ij")
    x, y = x - (w - 1) / 2, y - (h - 1) / 2
    keep = (v >= 20).double()
    columns = [torch.ones_like(x), x, y]
    normal = torch.stack(
        [torch.stack([(keep * p * q).sum((1, 2)) for q in columns], -1) for p in columns], -2
    )
    rhs = torch.stack([(keep * p * v).sum((1, 2)) for p in columns], -1)
    a, b, e = torch.linalg.solve(normal, rhs).unbind(-1)
    flipped = b < 0
    reference = torch.where(flipped.view(-1, 1, 1), original[:, 0].flip(-1), original[:, 0])
    changed = ((v - reference.double()).abs() * ~zero).flatten(1).amax(1) > 1
    return {
        "flipped": flipped.numpy(),
        "affine": changed.numpy(),
        "hole": hole.numpy(),
        "angle": torch.rad2deg(torch.atan2(e, b.abs())).numpy(),
        "gradient": torch.hypot(b, e).numpy(),
        "centre": a.numpy(),
        "zeros": zero.double().mean((1, 2)).numpy(),
    }


def batched_features(images: torch.Tensor, seed: int = 0) -> dict[str, np.ndarray]:
    out = FlipAffineCutout().batch(images, torch.Generator().manual_seed(seed))
    return features(out, images)


def within(fraction: float, p: float, n: int = N) -> bool:
    return abs(fraction - p) <= 4 * math.sqrt(p * (1 - p) / n)


def test_batched_recipe_draws_and_per_sample_statistics() -> None:
    images = plane_batch()
    draws = FlipAffineCutout().draw(N, SIZE, SIZE, torch.Generator().manual_seed(0))
    # The parameters: uniform in the documented ranges, shifts whole pixels within ±10%.
    assert draws.angle.abs().max() <= 15 and draws.angle.std() == pytest.approx(15 / 3**0.5, 0.05)
    for scale in (draws.scale_x, draws.scale_y):
        assert scale.min() >= 0.9 and scale.max() <= 1.1 and abs(scale.mean() - 1) < 0.004
    for shift in (draws.shift_x, draws.shift_y):
        assert set(shift.unique().tolist()) == {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}
    assert (draws.corner_y.max(), draws.corner_x.max()) == (SIZE - HOLE, SIZE - HOLE)
    # What the images show agrees with what was drawn, image by image ...
    found = batched_features(images)
    assert np.array_equal(found["flipped"], draws.flip.numpy())
    assert np.array_equal(found["hole"], draws.dropout.numpy())
    assert np.array_equal(found["affine"], draws.affine.numpy())
    # ... and the fractions are the recipe's probabilities.
    for name, p in (("flipped", 0.5), ("affine", 0.5), ("hole", 0.3)):
        assert within(found[name].mean(), p), (name, found[name].mean())
    # Untransformed images keep their gradient angle (atan2(2, 4)); transformed ones spread.
    plain = ~found["affine"]
    assert np.allclose(found["angle"][plain], math.degrees(math.atan2(2, 4)), atol=0.5)
    assert found["angle"][~plain].std() > 5


def test_batched_recipe_matches_albumentations_statistics() -> None:
    pytest.importorskip("albumentations", reason="the albumentations extra is not installed")
    images = plane_batch()
    recipe = AlbumentationsRecipe(seed=0)
    albumented = torch.stack(
        [
            torch.from_numpy(recipe.sample_transform(image.permute(1, 2, 0).numpy().copy()))
            for image in images
        ]
    ).permute(0, 3, 1, 2)
    theirs, ours = features(albumented, images), batched_features(images)
    for name, p in (("flipped", 0.5), ("affine", 0.5), ("hole", 0.3)):
        assert within(theirs[name].mean(), p), (name, theirs[name].mean())
        difference = abs(theirs[name].mean() - ours[name].mean())
        assert difference <= 4 * math.sqrt(2 * p * (1 - p) / N), (name, difference)
    for name in ("angle", "gradient", "centre", "zeros"):
        assert ks_2samp(theirs[name], ours[name]).pvalue > 1e-3, name
        assert abs(theirs[name].std() - ours[name].std()) <= 0.15 * theirs[name].std(), name


def test_same_draws_give_cv2s_warp_within_one_grey_level() -> None:
    """The batched affine is albumentations' Affine (its matrix, cv2.warpAffine, bilinear,
    zero border) for the same parameters."""
    pytest.importorskip("albumentations", reason="the albumentations extra is not installed")
    import cv2
    from albumentations.augmentations.geometric import functional as fgeometric

    images = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (48, 3, SIZE, SIZE), dtype=np.uint8)
    )
    augment = FlipAffineCutout(affine_p=1.0, dropout_p=0.0)
    draws = augment.draw(len(images), SIZE, SIZE, torch.Generator().manual_seed(0))
    out = augment.apply(images, draws)
    for i, image in enumerate(images):
        source = image.permute(1, 2, 0).numpy()
        source = np.ascontiguousarray(source[:, ::-1] if draws.flip[i] else source)
        matrix = fgeometric.create_affine_transformation_matrix(
            {"x": float(draws.shift_x[i]), "y": float(draws.shift_y[i])},
            {"x": 0.0, "y": 0.0},
            {"x": float(draws.scale_x[i]), "y": float(draws.scale_y[i])},
            float(draws.angle[i]),
            fgeometric.center((SIZE, SIZE)),
        )
        expected = cv2.warpAffine(
            source, matrix[:2], (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0)
        )
        difference = np.abs(expected.astype(int) - out[i].permute(1, 2, 0).numpy().astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.01, i


def test_draws_are_resumable_and_fixed_in_number() -> None:
    """Ten draws per image whatever they decide: a restored generator state continues the
    same stream, and two different batches leave the generator in the same state."""
    augment, generator = FlipAffineCutout(), torch.Generator().manual_seed(3)
    images = plane_batch(64)
    augment.batch(images, generator)
    state = generator.get_state()
    first = augment.batch(images, generator)
    after_first = generator.get_state()
    generator.set_state(state)
    assert torch.equal(augment.batch(images, generator), first)
    generator.set_state(state)
    augment.batch(torch.zeros_like(images), generator)
    assert torch.equal(generator.get_state(), after_first)


def test_single_channel_28px_images_keep_shape_and_dtype() -> None:
    images = plane_batch(16, size=28, channels=1)
    out = FlipAffineCutout().batch(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert not torch.equal(out, images)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"flip_p": 1.5}, "augment.flip_p must be a probability"),
        ({"shift": -0.1}, "augment.shift"),
        ({"rotate": 200}, "augment.rotate"),
        ({"dropout_size": -1}, "augment.dropout_size"),
    ],
)
def test_bad_options_are_one_line(options, message) -> None:
    node = {"_target_": "cnnlab.augment.FlipAffineCutout", **options}
    with pytest.raises(CnnlabError, match=message):
        build(node, "augment")


def test_albumentations_recipe_without_the_extra_names_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "albumentations", None)
    with pytest.raises(CnnlabError, match=r"pip install 'cnnlab\[albumentations\]'"):
        build({"_target_": "cnnlab.augment.AlbumentationsRecipe"}, "augment")
