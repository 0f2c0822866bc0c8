"""What this machine's CPU is: read once here for precision, benchmarks and the study."""

from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")
# What makes torch use fewer vector extensions than the CPU has: ATen's kernels
# (ATEN_CPU_CAPABILITY) and oneDNN's convolutions and matmuls (ONEDNN_MAX_CPU_ISA, formerly
# DNNL_MAX_CPU_ISA). Set to an AVX2 level on a bf16 CPU, they give an AVX2 machine's kernels.
ISA_LIMIT_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
# oneDNN's levels below native bf16; it ignores a value it does not know, so that is no limit.
_ONEDNN_BELOW_BF16 = {
    *("sse41", "avx", "avx2", "avx2_vnni", "avx2_vnni_2", "avx512_core", "avx512_core_vnni")
}
# CPU kinds by the flag that decides them, best first: (flag, tag for file names, wording).
CPU_KINDS = (
    ("amx_bf16", "amx", "AVX-512 with AMX and native bf16"),
    ("avx512_bf16", "avx512bf16", "AVX-512 with native bf16"),
    ("avx512f", "avx512", "AVX-512 without bf16"),
    ("avx2", "avx2", "AVX2 only"),
)
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
    ATen's side is read from torch itself (it warns about and ignores a value it does not
    know); oneDNN's from the environment, as oneDNN reads it.
    """
    if not cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return False
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or ""
    return onednn.strip().lower() not in _ONEDNN_BELOW_BF16


def _kind(flags: set[str] | None) -> tuple[str, str]:
    flags = cpu_flags() if flags is None else flags
    for flag, tag, wording in CPU_KINDS:
        if flag in flags:
            return tag, wording
    return "cpu", "unknown vector extensions"


def cpu_tag(flags: set[str] | None = None) -> str:
    """The kind as a file-name word (amx, avx512bf16, avx512, avx2), `-as-avx2` etc. added
    where the environment limits torch's kernels: such figures are neither kind's."""
    tag = _kind(flags)[0]
    if isa_limits():
        tag += "-as-" + torch.backends.cpu.get_cpu_capability().lower().replace(" ", "")
    return tag


def cpu_kind(flags: set[str] | None = None) -> str:
    """What decides the speed of training here: native bf16 or fp32 vector width (and the
    environment's ISA limits, which make one kind run another's kernels)."""
    kind = _kind(flags)[1]
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
