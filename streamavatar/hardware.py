"""Which compute dtype is fast on this machine: bf16 only where the hardware has bf16 instructions.

On a CPU without them (x86 with AVX2 but neither AVX512-BF16 nor AMX, e.g. AMD Zen 2/3 and most Intel client
parts), PyTorch and oneDNN emulate bf16 arithmetic: measured here on a 2-core AMD EPYC with AVX2 only, a
512x512 bf16 matrix product took 51x the fp32 one and the tiny48 VAE's chunk decode 81x
(``benchmarks/bench_cpu_bf16.py``, docs/benchmarks.md). So the
default dtype everywhere is ``"auto"``: bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere; an explicit
``"bf16"`` is still honoured. The rule reads CPU flags (deterministic, free), not a timing.

This module imports no torch at module level, so the CLI parser can use it.
"""

from __future__ import annotations

import platform
from pathlib import Path

#: x86 flags (``/proc/cpuinfo``) whose presence means oneDNN runs bf16 matrix products natively.
X86_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: The Arm feature (``/proc/cpuinfo`` "Features", Armv8.6 BF16) with the same meaning.
ARM_NATIVE_BF16_FEATURE = "bf16"
#: The dtype names a user may pass; ``auto`` resolves with :func:`resolve_dtype_name`.
DTYPE_CHOICES = ("auto", "bf16", "fp32")


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The instruction-set flags of the first CPU in ``/proc/cpuinfo`` (or the given text); empty if unknown."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU computes bf16 in hardware (unknown CPUs count as not: fp32 is always right)."""
    flags = cpu_flags() if flags is None else flags
    if any(f in flags for f in X86_NATIVE_BF16_FLAGS):
        return True
    return platform.machine().lower() in ("aarch64", "arm64") and ARM_NATIVE_BF16_FEATURE in flags


def fast_dtype_name(device: str = "cpu") -> str:
    """``"bf16"`` where ``device`` computes it natively (CUDA, a CPU with bf16 instructions), else ``"fp32"``."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        return "bf16"
    if kind == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def resolve_dtype_name(name: str, *devices: str) -> str:
    """``auto`` → bf16 when every device in ``devices`` (default: the CPU) computes it fast, else fp32; other
    names unchanged."""
    if name != "auto":
        return name
    devices = devices or ("cpu",)
    return "bf16" if all(fast_dtype_name(d) == "bf16" for d in devices) else "fp32"


def emulated_bf16_warning(*devices: str) -> str | None:
    """One line for a user who asked for bf16 on a CPU that emulates it (``None`` when nothing is wrong)."""
    if any(str(d).split(":")[0] == "cpu" for d in (devices or ("cpu",))) and not cpu_has_native_bf16():
        return ("streamavatar: this CPU has no bf16 instructions (no AVX512-BF16/AMX); bf16 is emulated and runs "
                "tens of times slower than fp32 here. Use --dtype auto (or fp32).")
    return None
