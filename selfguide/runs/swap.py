"""Replace a folder with another in one step, and recover from a crash during it.

What it does: :func:`replace_dir` makes a complete staged folder the live one with no
moment in which there is none (one atomic exchange of the two folders where Linux has
``renameat2(RENAME_EXCHANGE)``, else rename the old one aside, the new one in, the old one
away); :func:`recover` repairs what a crash between those renames leaves (the old folder
aside and none in place). Used for a run's ``train/adapter``.

What it does not do: write the staged folder's content (training does) or decide paths
(:class:`selfguide.runs.rundir.RunDir` names them).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

# A leftover younger than this may belong to a swap in progress (the rename fallback runs
# in another process): it is left alone until then.
GRACE_S = 30.0


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False
    where the system or its file system cannot."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_dir(staged: Path, target: Path, old: Path) -> None:
    """Make ``staged`` the folder at ``target``; ``old`` is where the previous one waits
    while the fallback renames run (removed at the end)."""
    if target.is_dir() and exchange(staged, target):
        shutil.rmtree(staged, ignore_errors=True)  # it now holds the previous folder
        return
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staged.rename(target)  # a crash just before this leaves only ``old``: see recover()
    shutil.rmtree(old, ignore_errors=True)


def recover(target: Path, old: Path) -> bool:
    """Put ``old`` back at ``target`` when a crash mid-swap left no ``target`` (True), or
    remove a leftover ``old`` when ``target`` is there (the swap had finished)."""
    try:
        if not old.is_dir() or time.time() - old.stat().st_ctime < GRACE_S:
            return False
    except OSError:  # gone meanwhile: the swap finished
        return False
    if not target.exists():
        try:
            old.rename(target)
            return True
        except OSError:  # another process recovered it first
            return False
    shutil.rmtree(old, ignore_errors=True)
    return False
