"""Lightning's LearningRateMonitor under one stable key: `lr`, whatever the optimizer."""

from __future__ import annotations

import re
from typing import Any

from lightning.pytorch import callbacks

# Lightning names the key after the optimizer class (`lr-SGD`, `lr-Adam`, `lr-SGD/pg2`), so a
# sweep over optim= would give every run another tag and no curve to overlay.
_CLASS_PREFIX = re.compile(r"^lr-[^/]+")


def stable_name(name: str) -> str:
    """`lr-SGD` -> `lr`, `lr-SGD/pg2` -> `lr/pg2` (momentum keys follow: `lr-momentum`)."""
    return _CLASS_PREFIX.sub("lr", name)


class LearningRateMonitor(callbacks.LearningRateMonitor):
    """Logs the learning rate as `lr` (`lr/<group>` per parameter group when there are several).

    Lightning builds its keys in two name finders used both at train start and at every
    logging call; renaming their results keeps its own bookkeeping consistent. A scheduler
    given an explicit `name` keeps it.
    """

    def _find_names_from_schedulers(self, *args: Any, **kwargs: Any) -> Any:
        names, *rest = super()._find_names_from_schedulers(*args, **kwargs)
        return ([[stable_name(n) for n in group] for group in names], *rest)

    def _find_names_from_optimizers(self, *args: Any, **kwargs: Any) -> Any:
        names, *rest = super()._find_names_from_optimizers(*args, **kwargs)
        return ([[stable_name(n) for n in group] for group in names], *rest)
