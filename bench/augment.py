"""Augmentation throughput per core: the batched tensor path against albumentations.

Both paths are timed end to end on real CIFAR-10 training images, from "here are the
indices of a batch" to "a normalised float batch is ready for the model", on one thread:
- batched (the fast path): one gather from the uint8 split, `augment.batch` (flip folded
  into the translate gather, cutout as one scatter), fused normalisation + channels_last;
  for each batched recipe of the suite (augment=flip_crop, augment=airbench, airbench96's,
  and augment=flip_affine_cutout: the stage-3 recipe, one affine_grid + grid_sample);
- albumentations (augment=albumentations, the per-sample path; skipped without the
  `albumentations` extra): the DataLoader over
  `SampleTransformDataset` (HWC numpy per image, the albumentations pipeline, back to CHW
  tensors, default collate) in the main process, then the same normalisation.

"Per core" = images per CPU-second of this single-threaded process (`time.process_time`),
which other jobs on a shared CPU disturb far less than wall time; images per wall-second
are reported too. Repeats alternate between the paths; medians are reported.

    python bench/augment.py --batches 20 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import Record
from torch.utils.data import DataLoader

from cnnlab.augment import AlbumentationsRecipe, Augment, FlipAffineCutout, FlipCrop
from cnnlab.data.cifar10 import CIFAR10DataModule
from cnnlab.data.loaders import SampleTransformDataset
from cnnlab.errors import exits_cleanly

STAGE3_RECIPE = (
    "flip_affine_cutout (stage-3 augmentation recipe batched: flip, affine, coarse dropout)"
)
ALBUMENTATIONS = "albumentations (stage-3 augmentation recipe: flip, affine, coarse dropout)"
BATCHED = {
    "flip_crop (random flip, translate 4)": {"flip": "random", "padding": 4},
    "airbench (alternating flip, translate 2)": {"flip": "alternating", "padding": 2},
    "airbench96 (alternating flip, translate 4, cutout 12)": {
        "flip": "alternating",
        "padding": 4,
        "cutout": 12,
        "cutout_fill": [0.4914, 0.4822, 0.4465],
    },
}


def timed(fn: Callable[[], int]) -> tuple[float, float]:
    """(images per CPU-second, images per wall-second) of one call of `fn`."""
    cpu, wall = time.process_time(), time.perf_counter()
    images = fn()
    return images / (time.process_time() - cpu), images / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        cv2 = None
        print("albumentations extra not installed: timing the batched recipes only")
    record = Record("augment", args.out)

    dm = CIFAR10DataModule(
        data_dir=Path(os.environ.get("CNNLAB_DATA_DIR", "data")),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        channels_last=True,
    )
    dm.setup("fit")
    split = dm.train_split
    n = args.batches * args.batch_size
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:n]

    def batched(augment: Augment) -> Callable[[], int]:
        generator = torch.Generator().manual_seed(0)

        def run() -> int:
            for epoch, index in enumerate(order.split(args.batch_size)):
                images = split.images.index_select(0, index)  # as the fast path's loader does
                images = augment.batch(images, generator, index=index, epoch=epoch)
                dm.normalize(images)
            return n

        return run

    def albumentations() -> int:
        dataset = SampleTransformDataset(split, AlbumentationsRecipe(seed=0))
        loader = DataLoader(dataset, batch_size=args.batch_size, sampler=order.tolist())
        for images, _ in loader:
            dm.normalize(images)
        return n

    paths = {name: batched(FlipCrop(**options)) for name, options in BATCHED.items()}
    paths[STAGE3_RECIPE] = batched(FlipAffineCutout())
    if cv2 is not None:
        paths[ALBUMENTATIONS] = albumentations
    per_core: dict[str, list[float]] = {name: [] for name in paths}
    per_wall: dict[str, list[float]] = {name: [] for name in paths}
    for fn in paths.values():  # warm-up: first-call allocations, lazy imports
        fn()
    for repeat in range(args.repeats):
        for name, fn in paths.items():
            core, wall = timed(fn)
            per_core[name].append(round(core))
            per_wall[name].append(round(wall))
            print(f"repeat {repeat} {name}: {core:,.0f} img/s per core ({wall:,.0f} wall)")

    albu = statistics.median(per_core[ALBUMENTATIONS]) if ALBUMENTATIONS in paths else None
    summary = {
        name: {
            "images_per_core_second": statistics.median(per_core[name]),
            "images_per_wall_second": statistics.median(per_wall[name]),
            "speedup_vs_albumentations": (
                round(statistics.median(per_core[name]) / albu, 1) if albu else None
            ),
        }
        for name in paths
    }
    for name, row in summary.items():
        print(f"{name}: {row}")
    record.write(
        images=n,
        batch_size=args.batch_size,
        threads=1,
        summary=summary,
        per_repeat_images_per_core_second=per_core,
        goal_speedup=20,
        goal_met=albu is not None
        and all(
            row["speedup_vs_albumentations"] >= 20
            for name, row in summary.items()
            if name in BATCHED
        ),
        seed_recipe_speedup=summary[STAGE3_RECIPE]["speedup_vs_albumentations"],
    )


if __name__ == "__main__":
    exits_cleanly(main)()
