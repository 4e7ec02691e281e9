"""glibc malloc thresholds (selfguide/models/allocator.py): freed memory is kept for reuse."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from selfguide.models import allocator

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt is glibc's")

# Five rounds of a 64 MiB buffer allocated, written and freed, as a forward's activations
# are; prints whether the thresholds were set and the minor page faults of the five rounds.
PROBE = """
import resource
from selfguide.models import allocator
on = allocator.keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    buf = bytearray(64 << 20)
    buf[::4096] = b"x" * len(buf[::4096])
    del buf
print(on, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(**env: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, env={**os.environ, **env}).stdout.split()
    return out[0] == "True", int(out[1])


def test_freed_buffers_are_reused_instead_of_faulted_in_again():
    on, kept = _probe()
    off, default = _probe(SELFGUIDE_MALLOC="0")
    assert on and not off
    pages = (64 << 20) // 4096
    assert default >= 4 * pages  # glibc's default: a fresh mapping every round
    assert kept < 2 * pages  # kept: faulted in once, then reused


def test_applied_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setattr(allocator, "_apply", lambda: calls.append(1) or True)
    assert allocator.keep_freed_memory() and allocator.keep_freed_memory()
    assert calls == [1]
