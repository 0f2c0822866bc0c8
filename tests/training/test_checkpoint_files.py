"""Checkpoint files: a kill in the middle of a write never leaves a torn file."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cnnlab.checkpoints.io import AtomicCheckpointIO, read_checkpoint


def test_atomic_save_keeps_the_old_file_when_killed_mid_write(tmp_path, monkeypatch) -> None:
    io, target = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, target)

    def torn_save(obj: Any, handle: Any) -> None:
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, target)
    assert read_checkpoint(target)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# -- data order ----------------------------------------------------------------------------
