"""Library messages that say nothing about the run, silenced one by one at their source.

A run prints its config, its progress and its results; a line a user must learn to ignore
hides the one that matters. Each entry names one exact message, so anything new still shows.
"""

from __future__ import annotations

import logging
import warnings

# (message regex, category) of warnings that do not concern the run.
WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Lightning's pytree helper still builds torch's deprecated LeafSpec (torch >= 2.10).
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # Under mixed precision the weights stay fp32, so the summary's 32-bit size is right.
    (r"Precision (bf16|16)-mixed is not supported by the model summary", UserWarning),
)

# Starts of Lightning info lines that advertise products or narrate internals.
INFO_LINES = (
    "💡 Tip:",  # litlogger / litmodels advertisements
    "Loading `train_dataloader` to estimate number of stepping batches",
)
# Where Lightning's rank-zero messages are logged from.
INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _DropLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(INFO_LINES)


_FILTER = _DropLines()


def silence_library_noise() -> None:
    """Install the filters (idempotent); call at the start of an entry point."""
    for message, category in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in INFO_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
