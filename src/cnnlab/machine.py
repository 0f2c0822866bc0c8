"""What this machine's CPU is: read once here for precision, benchmarks and the study."""

from __future__ import annotations

import ctypes
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is not available)."""
    return set((_cpuinfo_field("flags") or "").split())


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 math (AVX512-BF16 or AMX).

    Without it, bf16 autocast on CPU is emulated: measured 10-20x *slower* than fp32 on a
    2-core AMD EPYC with AVX2 only.
    """
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_kind(flags: set[str] | None = None) -> str:
    """What decides the speed of training here: native bf16 or fp32 vector width."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "AVX-512 with AMX and native bf16"
    if "avx512_bf16" in flags:
        return "AVX-512 with native bf16"
    if "avx512f" in flags:
        return "AVX-512 without bf16"
    if "avx2" in flags:
        return "AVX2 only"
    return "unknown vector extensions"


def keep_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse instead of handing it back to the OS.

    glibc serves every block over 32 MiB (a batch's activations, their gradients) with a
    fresh mmap and unmaps it when freed, so every training step page-faults and zeroes the
    same few hundred MB again: ~20% of a CPU training step, measured (bench/allocator.py).
    With mmap off and no trimming, freed blocks are reused; the cost is that the process's
    resident memory stays at its peak. Returns False where the C library is not glibc.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
