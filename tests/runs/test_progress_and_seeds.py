"""Small runtime helpers shared by every stage: the progress adapter and the seeds."""

from __future__ import annotations

import zlib

from selfguide.runs.events import Progress, delta_progress
from selfguide.seeding import derive_seed


def test_delta_progress_turns_cumulative_counts_into_increments():
    prog = Progress("t", 10, stream=None)
    seen: list[int] = []
    cb = delta_progress(prog, on_tokens=seen.append)
    for done, tokens in ((2, 5), (2, 9), (6, 20)):
        cb(done, 10, tokens)
    assert prog.done == 6 and prog.tokens == 20
    assert seen == [5, 4, 11]


def test_delta_progress_tokens_only():
    seen: list[int] = []
    cb = delta_progress(on_tokens=seen.append)
    cb(1, 3, 4)
    cb(3, 3, 4)
    assert seen == [4, 0]


def test_derive_seed_is_the_stable_crc32_scheme():
    """The scheme the SELF-GUIDE pipeline and the label command always used: changing it
    would change every run's samples."""
    assert derive_seed(0, "annotate", "c-1") == zlib.crc32(b"0:annotate:c-1") & 0x7FFFFFFF
    assert derive_seed(7, "probe") != derive_seed(7, "inputs", 0)
    assert 0 <= derive_seed("x") < 2**31
