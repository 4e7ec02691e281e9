"""Which float format this machine computes fast in.

bf16 halves the memory of fp32, but only some processors multiply in it natively: CUDA GPUs
from Ampere on, and CPUs with AVX512-BF16 or AMX (x86) or the BF16 extension (Arm). On
others torch emulates it: on a 2-core AVX2 CPU a bf16 matmul ran at 1.3 GFLOPS against 82
in fp32, and a forward of the embedded model 4.7x slower (bench/README.md "Precision").
``auto`` precisions therefore pick bf16 only where it is native and fp32 elsewhere.

``SELFGUIDE_CPU_BF16=1`` (or ``0``) overrides the CPU check. No selfguide imports; torch is
imported only for CUDA.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (x86 ``flags``, Arm ``Features``)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


@lru_cache(maxsize=None)
def _cpu_bf16_native() -> bool:
    if platform.system() == "Darwin":  # no /proc/cpuinfo; torch's bf16 on Apple CPUs is not
        return False                   # measured here, fp32 is the safe choice
    return bool(cpu_flags() & CPU_BF16_FLAGS)


def bf16_is_fast(device: str) -> bool:
    """Whether ``device`` ('cpu', 'cuda', 'mps') multiplies bf16 natively."""
    if device == "cuda":
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device != "cpu":
        return False
    env = os.environ.get("SELFGUIDE_CPU_BF16", "").strip()
    if env in ("0", "1"):
        return env == "1"
    return _cpu_bf16_native()


def dense_precision(device: str) -> str:
    """The unquantized precision ``auto`` means on ``device``: bf16 where native, else fp32."""
    return "bf16" if bf16_is_fast(device) else "fp32"


def slow_bf16_note(precision: str, device: str) -> str | None:
    """A warning when bf16 was asked for where it is emulated, else None."""
    if precision == "bf16" and device == "cpu" and not bf16_is_fast("cpu"):
        return ("This CPU has no native bf16 (AVX512-BF16 or AMX), so bf16 runs emulated, "
                "several times slower than fp32; precision 'auto' or 'fp32' is faster here.")
    return None
