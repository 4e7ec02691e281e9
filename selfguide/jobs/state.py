"""Job state on disk: the files of ``<run>/jobs/<stage>/`` and what they say.

What it does: names and reads/writes ``status.json`` (atomic), checks whether the recorded
process is alive, tails ``log.txt`` and ``events.jsonl`` cheaply, and derives the state a
poller sees (:func:`status`, :func:`events`, :func:`list_jobs`, :func:`check_inputs_idle`).

What it does not do: run a stage (:mod:`selfguide.jobs.child`) or start and stop processes
(:mod:`selfguide.jobs.launch`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from selfguide.errors import CorruptFile, JobError, SelfGuideError, StageBusy
from selfguide.jobs.proc import _alive, _how_it_ended
from selfguide.runs import store
from selfguide.runs.rundir import RunDir

STATES = ("none", "starting", "running", "finished", "failed", "cancelled", "interrupted")
ACTIVE = ("starting", "running")
FINAL = ("finished", "failed", "cancelled")
HEARTBEAT_ENV = "SELFGUIDE_HEARTBEAT_S"
DEFAULT_HEARTBEAT_S = 2.0
STALE_AFTER = 3  # heartbeats missed before a running job counts as interrupted
KILL_AFTER_S = 5.0
LOCK_TIMEOUT_S = 60.0
LOG_TAIL_BYTES = 4096
JOB_DIR_ENV = "SELFGUIDE_JOB_DIR"  # set for a child started by jobs.start
_STAGE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

# Popen objects of children started by this process, so they are reaped (no zombies)
# and their exit code is known. Keyed by (jobs dir).
_CHILDREN: dict[str, subprocess.Popen] = {}


# --------------------------------------------------------------------------- status type

@dataclasses.dataclass
class JobStatus:
    """What a job is doing, as derived from its files (and the process table)."""

    run: str
    stage: str
    state: str = "none"
    pid: int | None = None
    pgid: int | None = None
    started: float | None = None
    ended: float | None = None
    heartbeat: float | None = None
    error: str | None = None
    reason: str | None = None
    progress: dict | None = None
    log_tail: str = ""
    argv: list[str] = dataclasses.field(default_factory=list)
    returncode: int | None = None

    @property
    def active(self) -> bool:
        """True while the job is starting or running."""
        return self.state in ACTIVE

    @property
    def done(self) -> bool:
        return self.state in FINAL or self.state == "interrupted"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- paths & io

def _heartbeat_interval() -> float:
    try:
        v = float(os.environ.get(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S))
    except ValueError:
        return DEFAULT_HEARTBEAT_S
    return v if v > 0 else DEFAULT_HEARTBEAT_S


def _check_stage(stage: str) -> str:
    if not isinstance(stage, str) or not _STAGE_RE.match(stage):
        raise JobError(f"Invalid job stage name {stage!r}.",
                       hint="Use lowercase letters, digits, '-' or '_' (e.g. 'synthesize').")
    return stage


def _run_dir(run: str | os.PathLike, workspace: str | os.PathLike | None, *,
             create: bool = False) -> Path:
    """A run given by name (validated, inside the workspace) or as a directory path."""
    if isinstance(run, os.PathLike):
        path = Path(run)
        if create:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise store._storage_error(exc, path) from exc
        return path
    return store.resolve_run_dir(run, workspace, create=create)


# The stage dependencies, in one table: which stages write what a stage reads. A stage
# must not start while one of them runs, nor while a stage that reads what it writes runs
# (:func:`conflicting_stages`); ``selfguide.runs.stale`` marks a stage stale when what it
# read changed after it ran. ``SYNTHESIS`` stands for every synthesis method's stage
# (``methods.stages()``).
SYNTHESIS = "<synthesis>"
INPUT_WRITERS: dict[str, tuple[str, ...]] = {
    "filter": (SYNTHESIS, "relabel"),         # the candidates and their overrides
    "train": (SYNTHESIS, "filter", "relabel"),  # dataset/
    "export": (SYNTHESIS, "filter", "relabel"),  # dataset/
    "relabel": (SYNTHESIS, "filter", "train"),  # inputs, candidates, train/adapter
    "eval": ("train",),                       # train/adapter
    "merge": ("train",),                      # train/adapter
    "export-model": ("train",),               # train/adapter
}


def input_writers(stage: str) -> tuple[str, ...]:
    """The stages whose jobs write ``stage``'s inputs, method stages spelt out."""
    from selfguide import methods

    out: list[str] = []
    for other in INPUT_WRITERS.get(stage, ()):
        out += methods.stages() if other == SYNTHESIS else [other]
    return tuple(out)


def input_readers(stage: str) -> tuple[str, ...]:
    """The stages that read what ``stage`` writes (the table read the other way)."""
    return tuple(s for s in INPUT_WRITERS if stage in input_writers(s))


def conflicting_stages(stage: str) -> tuple[str, ...]:
    """The stages that must not run while ``stage`` starts: those that write its inputs,
    then those that read what it writes."""
    return tuple(dict.fromkeys(input_writers(stage) + input_readers(stage)))


def check_inputs_idle(run_dir: str | os.PathLike, stage: str) -> None:
    """Raise ``StageBusy`` if a stage that writes ``stage``'s inputs, or reads what it
    writes, is running on the run (a live process other than this one; a dead or finished
    job does not block)."""
    writers = input_writers(stage)
    for other in conflicting_stages(stage):
        try:
            raw = _read_status(job_dir(run_dir, other))
        except SelfGuideError:  # an unreadable status blocks nothing; status() reports it
            continue
        if raw.get("state") in ACTIVE and raw.get("pid") != os.getpid() and _alive(raw):
            why = (f"{stage} reads what it writes" if other in writers
                   else f"it reads what {stage} would rewrite")
            raise StageBusy(
                f"The {other} job of run {Path(run_dir).name!r} is running (pid "
                f"{raw.get('pid')}); {why}.",
                hint=f"Wait for {other} to finish (selfguide runs), or cancel it first.")


def job_dir(run_dir: str | os.PathLike, stage: str) -> Path:
    """``<run_dir>/jobs/<stage>`` (not created)."""
    return RunDir(run_dir).job_dir(_check_stage(stage))


def _lock(jdir: Path, timeout: float = LOCK_TIMEOUT_S):
    return store.file_lock(jdir / "start.lock", timeout=timeout)


def _read_status(jdir: Path) -> dict:
    return RunDir(jdir.parent.parent).read_job_status(jdir.name)


def _write_status(jdir: Path, data: Mapping[str, Any], *, durable: bool = True) -> None:
    RunDir(jdir.parent.parent).write_job_status(jdir.name, dict(data), durable=durable)


def _beat() -> dict[str, float]:
    """A heartbeat: wall-clock time to show, monotonic time to judge staleness by."""
    return {"heartbeat": time.time(), "heartbeat_mono": time.monotonic()}


def _reap(jdir: Path, wait_s: float = 0.0) -> int | None:
    """Poll our own child for ``jdir`` (reaps a zombie), waiting up to ``wait_s`` for it;
    its return code or None."""
    proc = _CHILDREN.get(str(jdir))
    if proc is None:
        return None
    if wait_s > 0:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.wait(timeout=wait_s)
    return proc.poll()


def _log_tail(jdir: Path, nbytes: int = LOG_TAIL_BYTES) -> str:
    path = jdir / "log.txt"
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - nbytes))
            data = fh.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", "replace")
    if size > nbytes:  # drop the partial first line
        text = text.split("\n", 1)[-1]
    return text


def _last_error_line(log: str) -> str | None:
    lines = [ln.strip() for ln in log.replace("\r", "\n").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(("error:", "Fatal Python error")) or "Error" in ln.split(":", 1)[0]:
            return ln
    return lines[-1] if lines else None


def _reverse_lines(fh: Any, chunk: int) -> Iterator[bytes]:
    """The ``\n``-separated pieces of a binary file, last first; the first piece yielded is
    what follows the last newline (an uncommitted tail, often empty)."""
    fh.seek(0, os.SEEK_END)
    pos, carry = fh.tell(), b""
    while pos > 0:
        start = max(0, pos - chunk)
        fh.seek(start)
        parts = (fh.read(pos - start) + carry).split(b"\n")
        carry = parts[0]
        yield from reversed(parts[1:])
        pos = start
    yield carry


def _last_event(path: Path, type_: str, chunk: int = 65536) -> dict | None:
    """The last committed event of ``type_``, reading the file from the end (cheap to poll
    on a long training log); corrupt lines are skipped, never fatal."""
    try:
        with open(path, "rb") as fh:
            lines = _reverse_lines(fh, chunk)
            next(lines, None)  # the uncommitted tail
            for raw in lines:
                if not raw.strip():
                    continue
                try:
                    ev = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    continue  # a corrupt line never hides the rest of the progress
                if isinstance(ev, dict) and ev.get("type") == type_:
                    return ev
    except FileNotFoundError:
        return None
    return None


def status(run: str | os.PathLike, stage: str, *,
           workspace: str | os.PathLike | None = None) -> JobStatus:
    """The current state of the ``stage`` job of ``run`` (cheap; safe to poll)."""
    run_dir = _run_dir(run, workspace)
    jdir = job_dir(run_dir, stage)
    raw, alive = _read_live_status(jdir)
    # after the liveness check: a worker seen gone has its exit status (a zombie leader
    # can wait a moment for its other threads before it can be reaped)
    rc = _reap(jdir, wait_s=2.0 if raw.get("state") in ACTIVE and not alive else 0.0)
    st = JobStatus(run=run_dir.name, stage=stage)
    if not raw:
        return st
    st.state = raw.get("state") if raw.get("state") in STATES else "interrupted"
    for key in ("pid", "pgid", "started", "ended", "heartbeat", "error", "reason"):
        setattr(st, key, raw.get(key))
    st.argv = list(raw.get("argv") or [])
    st.returncode = rc
    st.log_tail = _log_tail(jdir)
    st.progress = _last_event(jdir / "events.jsonl", "progress")
    if st.state in ACTIVE:
        _derive_active(st, raw, alive)
    return st


def _read_live_status(jdir: Path) -> tuple[dict, bool]:
    """``status.json`` and whether its worker is alive, judged race-free.

    A worker writes its final status and then exits. Read the status, find its process
    gone, and the final status may have landed in between: so a dead worker's status is
    read again after the liveness check, and only a status still active *after* its
    process was seen gone counts as a worker that died without reporting.
    """
    for _ in range(3):
        try:
            raw = _read_status(jdir)
        except CorruptFile:  # a torn status cannot happen with atomic writes; be explicit
            return {"state": "interrupted",
                    "error": f"{jdir / 'status.json'} is unreadable."}, False
        if raw.get("state") not in ACTIVE:
            return raw, False
        if _alive(raw):
            return raw, True
        try:
            again = _read_status(jdir)
        except CorruptFile:
            again = {}
        if again == raw:  # still active on disk with its process gone: it died
            return raw, False
        # the worker wrote its end (or a new worker claimed the job) meanwhile: judge that
    return raw, raw.get("state") in ACTIVE and _alive(raw)


def _derive_active(st: JobStatus, raw: Mapping[str, Any], alive: bool) -> None:
    if st.state == "starting":
        if not alive:  # ended before a worker or run_as_job could record anything
            if st.returncode == 0:
                st.state = "finished"
            else:
                st.state = "failed" if st.returncode and st.returncode > 0 else "interrupted"
                st.reason = "startup"
                st.error = (f"The job process (pid {st.pid}) ended before it started working"
                            + (f" (exit status {st.returncode})." if st.returncode is not None
                               else ".") + (f" Last log line: {last}"
                                            if (last := _last_error_line(st.log_tail)) else ""))
        return
    interval = float(raw.get("heartbeat_interval") or DEFAULT_HEARTBEAT_S)
    age = time.time() - float(raw.get("heartbeat") or 0)
    mono = raw.get("heartbeat_mono")
    if isinstance(mono, (int, float)) and raw.get("host") in (None, socket.gethostname()):
        age = time.monotonic() - float(mono)  # the wall clock may have been stepped
    if not alive:
        st.state = "interrupted"
        st.reason = "died"
        st.error = (f"The worker (pid {st.pid}) stopped without reporting a result "
                    f"({_how_it_ended(st.returncode)}). Start it again to resume.")
        last = _last_error_line(st.log_tail)
        if last and ("error" in last.lower()):
            st.error += f" Last log line: {last}"
    elif age > STALE_AFTER * interval:
        st.state = "interrupted"
        st.reason = "stale"
        st.error = (f"No heartbeat from the worker (pid {st.pid}) for {age:.0f} s: it is "
                    "hung, stopped or starved of CPU. If it does not come back, cancel it "
                    "and start again.")


def events(run: str | os.PathLike, stage: str, *,
           workspace: str | os.PathLike | None = None,
           types: tuple[str, ...] | None = None) -> list[dict]:
    """All committed events of the latest ``stage`` job (optionally only ``types``)."""
    from selfguide.runs.events import read_events

    path = job_dir(_run_dir(run, workspace), stage) / "events.jsonl"
    return read_events(path, types)


def list_jobs(run: str | os.PathLike, *,
              workspace: str | os.PathLike | None = None) -> list[JobStatus]:
    """The status of every stage that has a job directory in ``run``."""
    run_dir = _run_dir(run, workspace)
    base = RunDir(run_dir).jobs_dir
    if not base.is_dir():
        return []
    return [status(run_dir, p.name) for p in sorted(base.iterdir())
            if p.is_dir() and _STAGE_RE.match(p.name)]
