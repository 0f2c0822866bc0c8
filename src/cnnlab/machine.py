"""What this machine's CPU is: read once here for precision, benchmarks and the study."""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


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
