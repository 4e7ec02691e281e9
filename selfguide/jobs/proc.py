"""Is a job's worker still the process it was? Identity, liveness and how it ended.

A job's ``status.json`` records its worker's pid with what tells that process from a later
one with the same pid: its start in clock ticks since boot (Linux; immune to a stepped wall
clock) and its wall-clock ``create_time`` (elsewhere, within a second). Used by
:mod:`selfguide.jobs.state` (polling), :mod:`~selfguide.jobs.child` (claiming a stage) and
:mod:`~selfguide.jobs.launch` (starting and cancelling).
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Mapping
from typing import Any


def _proc_create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


def _proc_start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux; None elsewhere).

    Unlike the wall-clock ``create_time`` this never moves when the clock is stepped (NTP,
    a restored or forked VM), so it tells a process from a later one with its pid.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            rest = fh.read().rsplit(b")", 1)[1].split()
        return int(rest[19])  # field 22, starttime; rest starts at field 3
    except (OSError, IndexError, ValueError):
        return None


def _identity(pid: int) -> dict[str, Any]:
    """What status.json records to recognise ``pid`` later (see :func:`_alive`)."""
    return {"create_time": _proc_create_time(pid), "start_ticks": _proc_start_ticks(pid)}


def _alive(raw: Mapping[str, Any]) -> bool:
    """Is the process recorded in ``raw`` still running (same pid *and* start time)?"""
    import psutil

    pid = raw.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    host = raw.get("host")
    if host and host != socket.gethostname():
        return True  # another machine (shared disk): trust the heartbeat only
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        ticks = raw.get("start_ticks")
        if isinstance(ticks, int) and (now := _proc_start_ticks(pid)) is not None:
            return now == ticks  # immune to clock steps, exact
        ct = raw.get("create_time")
        return ct is None or abs(proc.create_time() - float(ct)) < 1.0
    except (psutil.NoSuchProcess, ProcessLookupError):
        return False
    except psutil.AccessDenied:
        return True


def _how_it_ended(returncode: int | None) -> str:
    """A dead worker's end in words, from its exit status where this process saw it."""
    if returncode is None:  # not our child (another studio session, a CLI run)
        return "killed or crashed"
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    if name == "SIGKILL":
        return "killed by SIGKILL; the system may have run out of memory"
    if name in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT"):
        return f"crashed: {name}"
    return f"stopped by {name}"
