"""Sample order as a pure function of (seed, epoch, rank): exact resume and exact DDP evaluation.

`DataLoader(shuffle=True)` draws its order from torch's global RNG, so the order of epoch e
depends on everything that consumed that RNG before it (model init, dropout, other loaders),
and a resumed run cannot reproduce it. `EpochSampler` instead seeds its own generator from
`(seed, epoch)` only. Lightning calls `set_epoch` on it at every epoch start (as it does for
any DistributedSampler), and the loop counters Lightning restores from a checkpoint pick the
epoch; the datamodule adds the number of samples already trained in that epoch
(`resume_at`), so a resumed run continues with exactly the batch the killed run would have
trained next ("skip consumed batches" resume: no per-iterator state, nothing to prefetch).

Sharding is built in, so Lightning leaves the sampler alone under DDP (it only injects its
own DistributedSampler into loaders whose sampler is not one):
- training shards drop the epoch's last `len % world_size` samples of the permutation, so
  every rank runs the same number of steps (DDP needs that) and no sample is duplicated;
- evaluation shards are `rank::world_size` of the unshuffled indices, unpadded: every sample
  is evaluated exactly once, so synced torchmetrics over 2 processes equal 1 process
  (DistributedSampler would pad by repeating samples). Ranks may differ by one sample.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sized

import numpy as np
import torch
from torch.utils.data import DistributedSampler


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator seeded from (seed, epoch) through SeedSequence: no seed+epoch collisions."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class EpochSampler(DistributedSampler):
    """Shuffled (training) or sequential (evaluation) indices of one rank's shard."""

    def __init__(
        self,
        data: Sized,
        seed: int,
        shuffle: bool,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        # drop_last=True for training: equal step counts per rank without duplicated samples.
        super().__init__(
            data, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=shuffle
        )
        self.size = len(data)
        if shuffle:
            self.num_samples = self.size // world_size
        else:
            self.num_samples = len(range(rank, self.size, world_size))
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, samples_done: int) -> None:
        """Skip the first `samples_done` samples of this shard when `epoch` is next iterated."""
        self.epoch = epoch
        self._resume = (epoch, samples_done)

    def indices(self, epoch: int) -> list[int]:
        """This rank's whole shard for `epoch` (before any resume skip)."""
        if not self.shuffle:
            return list(range(self.rank, self.size, self.num_replicas))
        order = torch.randperm(self.size, generator=epoch_generator(self.seed, epoch)).tolist()
        usable = self.num_samples * self.num_replicas
        return order[self.rank : usable : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        shard = self.indices(self.epoch)
        skip = 0
        if self._resume is not None:
            if self._resume[0] == self.epoch:
                skip = self._resume[1]
            self._resume = None  # a skip applies to the first iteration after a restore only
        return iter(shard[skip:])

    def __len__(self) -> int:
        # The full shard: Lightning counts the batches already done itself when it resumes.
        return self.num_samples


def expect_exact_mid_epoch_resume() -> None:
    """Silence Lightning's "dataloader is not resumable" warning for our loaders.

    Lightning only recognises loaders with their own `state_dict`; ours resume through the
    datamodule's saved position and `EpochSampler.resume_at`, which is exact.
    """
    warnings.filterwarnings(
        "ignore", message="You're resuming from a checkpoint that ended before the epoch ended"
    )
