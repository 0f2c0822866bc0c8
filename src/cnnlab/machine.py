"""What this machine's CPU is: read once here for precision, benchmarks and the study."""

from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# What makes torch use fewer vector extensions than the CPU has: ATen's kernels
# (ATEN_CPU_CAPABILITY) and oneDNN's convolutions and matmuls (ONEDNN_MAX_CPU_ISA, formerly
# DNNL_MAX_CPU_ISA). Set to an AVX2 level on a bf16 CPU, they give an AVX2 machine's kernels.
ISA_LIMIT_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
# The values of each that still leave bf16 math native (the rest stop below it).
_BF16_ATEN = {"avx512"}
_BF16_ONEDNN = {
    "avx512_core_bf16",
    "avx512_core_fp16",
    "avx10_1_512",
    "avx512_core_amx",
    "avx10_1_512_amx",
    "avx512_core_amx_fp16",
    "avx10_1_512_amx_fp16",
}
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


def isa_limits() -> dict[str, str]:
    """The ISA limits set in the environment (name: value), `default` and empty left out."""
    limits = {name: os.environ.get(name, "").strip() for name in ISA_LIMIT_ENV}
    return {name: value for name, value in limits.items() if value.lower() not in ("", "default")}


def cpu_has_bf16() -> bool:
    """True when torch does bf16 math natively here: AVX512-BF16 or AMX, not limited away.

    Without it, bf16 autocast on CPU is emulated: measured 10-20x *slower* than fp32 on a
    2-core AMD EPYC with AVX2 only, and ~10x on an AVX512-BF16 EPYC limited to AVX2 kernels.
    """
    if not cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return False
    limits = {name: value.lower() for name, value in isa_limits().items()}
    aten = limits.get("ATEN_CPU_CAPABILITY")
    onednn = limits.get("ONEDNN_MAX_CPU_ISA", limits.get("DNNL_MAX_CPU_ISA"))
    return (aten is None or aten in _BF16_ATEN) and (onednn is None or onednn in _BF16_ONEDNN)


def cpu_kind(flags: set[str] | None = None) -> str:
    """What decides the speed of training here: native bf16 or fp32 vector width (and the
    environment's ISA limits, which make one kind run another's kernels)."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        kind = "AVX-512 with AMX and native bf16"
    elif "avx512_bf16" in flags:
        kind = "AVX-512 with native bf16"
    elif "avx512f" in flags:
        kind = "AVX-512 without bf16"
    elif "avx2" in flags:
        kind = "AVX2 only"
    else:
        kind = "unknown vector extensions"
    limits = isa_limits()
    if limits:
        kind += " limited by " + " ".join(f"{name}={value}" for name, value in limits.items())
    return kind


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
