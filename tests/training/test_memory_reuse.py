"""`keep_freed_memory`: freed tensor memory is reused instead of page-faulted back in.

glibc unmaps every freed block over 32 MiB, so a training step that frees its activations
and allocates them again next step pays a page fault per 4 KiB page (~20% of a CPU step,
bench/allocator.py). The setting is process-wide, so each side runs in its own process.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from cnnlab.training import task

# A training loop's pattern: the same big block allocated and freed step after step. The first
# steps grow the heap (small allocations can land in a freed hole and split it); after that the
# freed block is reused. Faults are counted over the last 3 of 10 steps.
REALLOCATE = """
import json, resource, sys
import torch
from cnnlab.machine import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "on" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for step in range(10):
    if step == 7:
        before = faults()
    torch.ones(64, 1024, 1024).sum()  # 256 MiB, freed at once
print(json.dumps({"applied": applied, "faults": faults() - before}))
"""


def reallocation_faults(side: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", REALLOCATE, side], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting")
def test_a_freed_block_is_reused_without_page_faults() -> None:
    off, on = reallocation_faults("off"), reallocation_faults("on")
    assert on["applied"] and not off["applied"]
    pages = 3 * 256 * 1024 // 4  # three 256 MiB blocks in 4 KiB pages
    assert off["faults"] > pages // 2  # glibc maps each afresh: one fault per page
    assert on["faults"] < pages // 20  # reused: (almost) none


@pytest.mark.parametrize("setting", [True, False])
def test_runs_apply_it_as_configured(
    make_cfg, monkeypatch: pytest.MonkeyPatch, setting: bool
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(task, "keep_freed_memory", lambda: calls.append(True) or True)
    cfg = make_cfg(["data=fashion_mnist", f"keep_freed_memory={str(setting).lower()}"])
    task.build_run(cfg)
    assert calls == ([True] if setting else [])
