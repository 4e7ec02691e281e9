"""Keep freed memory for the next step: glibc malloc thresholds for the model loops.

glibc serves a request above its mmap threshold (128 KiB at start, rising as such blocks
are freed, to at most 32 MiB) with fresh pages from the kernel and hands them back on
``free``; free memory at the top of the heap above the trim threshold goes back too. A
training step or a decode step allocates and frees activations, attention buffers and a
growing KV cache every forward, so each forward page-faults newly zeroed pages again, and
the first forwards of a process the most (the thresholds are still low). Fixed thresholds
of 256 MiB keep that memory in the process for reuse. Measured with the embedded model
(bench/README.md "Warm-up pass and the allocator"): page faults of a quick training -40%
on two VMs, the same peak RSS; greedy evaluation of 40 rows on an AVX2 VM 56 -> 48 s with
the same outputs; training wall time within run-to-run noise.

Applied once per process by :func:`selfguide.models.loading.load_model` (every path that runs a
model); only on glibc, elsewhere nothing changes. ``SELFGUIDE_MALLOC=0`` leaves glibc's
defaults. No selfguide imports.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc <malloc.h>
SETTINGS = ((M_MMAP_THRESHOLD, 256 << 20), (M_TRIM_THRESHOLD, 256 << 20), (M_TOP_PAD, 64 << 20))

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set the thresholds above (once per process); whether they are in effect."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("SELFGUIDE_MALLOC", "1").strip().lower() in {"0", "false", "off", "no"}:
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = all(libc.mallopt(param, value) == 1 for param, value in SETTINGS)
    except (OSError, AttributeError) as exc:  # no mallopt in this C library
        log.debug("malloc thresholds not set: %s", exc)
        return False
    return ok
