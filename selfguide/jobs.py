"""Background jobs: one subprocess per long stage, observable and cancellable from disk.

Every long stage (synthesize, self-instruct, train, eval, run) is a CLI command
``python -m selfguide <stage> --run NAME …``. The studio starts it with :func:`start`, polls
it with :func:`status`/:func:`events` (a browser refresh simply polls again: nothing lives
in the Streamlit session) and stops it with :func:`cancel`.

Files, per run and stage, in ``<run>/jobs/<stage>/``::

    status.json   state, pid, pgid, started, heartbeat, ended, error (atomic rewrites)
    events.jsonl  the worker's EventLog (progress, loss, status events)
    log.txt       the child's stdout + stderr
    start.lock    serialises start / worker start-up (a double click starts one worker)

Worker side (inside the stage command)::

    with jobs.worker(run_dir, "synthesize") as events:
        ...

writes ``running`` with a heartbeat every ``$SELFGUIDE_HEARTBEAT_S`` (2 s) from a daemon
thread, turns SIGTERM into :class:`~selfguide.errors.Cancelled`, and records ``finished`` /
``failed`` (with the error message) / ``cancelled`` on the way out.

A process started by :func:`start` also records its own exit (:func:`run_as_job`, called
by ``python -m selfguide``), so a command that fails before its worker starts (bad
arguments, a missing task file) reads as ``failed`` with the CLI's error line.

Derived states seen by :func:`status`: ``none`` (never started), ``starting`` (launched,
worker not yet up), ``running``, ``finished``, ``failed``, ``cancelled`` and
``interrupted`` (a ``running`` worker whose pid is gone or whose heartbeat is older than 3
intervals: kill -9, OOM killer, power loss).

What it does not do: decide what a stage computes, retry, or schedule several jobs. The
child's environment (which may hold ``HF_TOKEN``) is passed to the process only and never
written to any file here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from selfguide import store
from selfguide.errors import (
    Cancelled,
    CorruptFile,
    JobAlreadyRunning,
    JobError,
    SelfGuideError,
    StageBusy,
    StorageError,
)
from selfguide.events import EventLog

STATES = ("none", "starting", "running", "finished", "failed", "cancelled", "interrupted")
ACTIVE = ("starting", "running")
FINAL = ("finished", "failed", "cancelled")
HEARTBEAT_ENV = "SELFGUIDE_HEARTBEAT_S"
DEFAULT_HEARTBEAT_S = 2.0
STALE_AFTER = 3  # heartbeats missed before a running job counts as interrupted
KILL_AFTER_S = 5.0
LOCK_TIMEOUT_S = 60.0
LOG_TAIL_BYTES = 4096
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


# Which stages write the inputs of a stage: it must not start while one of them runs.
INPUT_WRITERS: dict[str, tuple[str, ...]] = {
    "filter": ("synthesize", "self-instruct"),
    "train": ("synthesize", "self-instruct"),
    "export": ("synthesize", "self-instruct"),
    "eval": ("train",),
    "merge": ("train",),
}


def check_inputs_idle(run_dir: str | os.PathLike, stage: str) -> None:
    """Raise ``StageBusy`` if a stage that writes ``stage``'s inputs is running on the run
    (a live process other than this one; a dead or finished job does not block)."""
    for other in INPUT_WRITERS.get(stage, ()):
        try:
            raw = _read_status(job_dir(run_dir, other))
        except SelfGuideError:  # an unreadable status blocks nothing; status() reports it
            continue
        if raw.get("state") in ACTIVE and raw.get("pid") != os.getpid() and _alive(raw):
            raise StageBusy(
                f"The {other} job of run {Path(run_dir).name!r} is running (pid "
                f"{raw.get('pid')}); {stage} reads what it writes.",
                hint=f"Wait for {other} to finish (selfguide runs), or cancel it first.")


def job_dir(run_dir: str | os.PathLike, stage: str) -> Path:
    """``<run_dir>/jobs/<stage>`` (not created)."""
    return Path(run_dir) / "jobs" / _check_stage(stage)


def _lock(jdir: Path, timeout: float = LOCK_TIMEOUT_S):
    return store.file_lock(jdir / "start.lock", timeout=timeout)


def _read_status(jdir: Path) -> dict:
    raw = store.read_json(jdir / "status.json", default=None)
    return raw if isinstance(raw, dict) else {}


def _write_status(jdir: Path, data: Mapping[str, Any], *, durable: bool = True) -> None:
    text = json.dumps(dict(data), indent=2, ensure_ascii=False, default=str) + "\n"
    store.atomic_write_bytes(jdir / "status.json", text.encode("utf-8"), fsync=durable)


def _proc_create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


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
        ct = raw.get("create_time")
        return ct is None or abs(proc.create_time() - float(ct)) < 1.0
    except (psutil.NoSuchProcess, ProcessLookupError):
        return False
    except psutil.AccessDenied:
        return True


def _reap(jdir: Path) -> int | None:
    """Poll our own child for ``jdir`` (reaps a zombie); its return code or None."""
    proc = _CHILDREN.get(str(jdir))
    if proc is None:
        return None
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
        if ln.startswith("error:") or "Error" in ln.split(":", 1)[0]:
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


# --------------------------------------------------------------------------- worker side

class _Worker:
    def __init__(self, run_dir: Path, stage: str):
        self.run_dir = Path(run_dir)
        self.stage = _check_stage(stage)
        self.jdir = job_dir(self.run_dir, stage)
        self.interval = _heartbeat_interval()
        self.data: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.finalizing = False
        self.prev_handler: Any = None
        self.installed = False
        self.ready = False  # until then a SIGTERM is remembered, not raised
        self.pending: int | None = None

    # heartbeat ------------------------------------------------------------
    def _beat(self) -> None:
        warned = False
        while not self.stop.wait(self.interval):
            with self.lock:
                if self.stop.is_set():
                    return
                self.data["heartbeat"] = time.time()
                try:  # no fsync: a beat every 2 s need not survive a power cut
                    _write_status(self.jdir, self.data, durable=False)
                except StorageError as exc:  # keep beating; the main thread will fail loudly
                    if not warned:
                        print(f"warning: heartbeat not written: {exc}", file=sys.stderr)
                        warned = True

    # signals --------------------------------------------------------------
    def _on_sigterm(self, signum, frame) -> None:
        if self.finalizing:
            return
        if not self.ready:  # mid start-up: raise once the status says "running"
            self.pending = signum
            return
        raise Cancelled(f"The {self.stage} job was cancelled (signal {signum}).")

    def _install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.prev_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
            self.installed = True

    def _uninstall(self) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.prev_handler or signal.SIG_DFL)
            self.installed = False

    # lifecycle ------------------------------------------------------------
    def enter(self) -> EventLog:
        self._install()  # first, so a cancel during start-up is never lost
        try:
            self._claim()
        except BaseException:
            self._uninstall()
            raise
        self.events = EventLog(self.jdir / "events.jsonl")
        try:
            store.clean_stale_temps(self.run_dir)
            self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.stage}",
                                           daemon=True)
            self.thread.start()
            self.events.emit("status", state="running", pid=os.getpid())
            self.ready = True
            if self.pending is not None:
                raise Cancelled(f"The {self.stage} job was cancelled (signal {self.pending}).")
        except BaseException as exc:
            self.exit(exc)
            raise
        return self.events

    def _claim(self) -> None:
        """Refuse if another live process works on this stage; write ``running``."""
        try:
            self.jdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store._storage_error(exc, self.jdir) from exc
        me = os.getpid()
        with _lock(self.jdir):
            prev = _read_status(self.jdir)
            if prev.get("state") in ACTIVE and prev.get("pid") not in (None, me) \
                    and _alive(prev):
                raise JobAlreadyRunning(
                    f"A {self.stage} job for {self.run_dir.name} is already running "
                    f"(pid {prev.get('pid')}).",
                    hint="Wait for it to finish or cancel it first.")
            launched_by_us = prev.get("state") == "starting" and prev.get("pid") == me
            if not launched_by_us:  # a fresh CLI run: start a fresh event log
                with contextlib.suppress(FileNotFoundError):
                    (self.jdir / "events.jsonl").unlink()
            now = time.time()
            self.data = {
                "run": self.run_dir.name, "stage": self.stage, "state": "running",
                "pid": me, "pgid": os.getpgrp(), "create_time": _proc_create_time(me),
                "host": socket.gethostname(),
                "launched": prev.get("launched") if launched_by_us else None,
                "argv": prev.get("argv") if launched_by_us else list(sys.argv[1:]),
                "started": now, "heartbeat": now, "heartbeat_interval": self.interval,
                "ended": None, "error": None, "reason": None,
            }
            _write_status(self.jdir, self.data)

    def exit(self, exc: BaseException | None) -> None:
        self.finalizing = True
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=self.interval + 5)
        if exc is None:
            state, error, reason = "finished", None, None
        elif isinstance(exc, (Cancelled, KeyboardInterrupt)):
            state, error, reason = "cancelled", str(exc) or "Cancelled by the user.", "cancelled"
        elif isinstance(exc, SelfGuideError):
            state, error = "failed", str(exc)
            reason = getattr(exc, "reason", None) or type(exc).__name__
        else:
            state, error, reason = "failed", f"{type(exc).__name__}: {exc}", "crash"
        try:
            # The event first: once status.json says final, events.jsonl is complete.
            with contextlib.suppress(StorageError):
                self.events.emit("status", state=state, error=error)
            with self.lock:
                self.data.update(state=state, error=error, reason=reason, ended=time.time(),
                                 heartbeat=time.time())
                _write_status(self.jdir, self.data)
        except StorageError as werr:
            print(f"warning: final job status not written: {werr}", file=sys.stderr)
        finally:
            self._uninstall()


@contextlib.contextmanager
def worker(run_dir: str | os.PathLike, stage: str) -> Iterator[EventLog]:
    """Run the body as the ``stage`` job of ``run_dir``; yields its :class:`EventLog`.

    Raises ``JobAlreadyRunning`` if another live process is the worker of this stage.
    Exceptions propagate unchanged after the final status is written.
    """
    w = _Worker(Path(run_dir), stage)
    events = w.enter()
    try:
        yield events
    except BaseException as exc:
        w.exit(exc)
        raise
    else:
        w.exit(None)


# --------------------------------------------------------------------------- child exit

JOB_DIR_ENV = "SELFGUIDE_JOB_DIR"


def run_as_job(main: Any, argv: list[str] | None = None) -> int:
    """Run ``main(argv)`` (the CLI) and, in a process started by :func:`start`, record its
    exit in ``status.json`` if no :func:`worker` did (commands that fail before their worker
    starts, such as bad arguments or a missing task file, or commands without a worker)."""
    jdir = os.environ.get(JOB_DIR_ENV)
    code: Any = 1
    try:
        code = main(argv)
        return code
    except SystemExit as exc:  # argparse errors, --help
        code = exc.code
        raise
    finally:
        if jdir:
            _record_exit(Path(jdir), code)


def _record_exit(jdir: Path, code: Any) -> None:
    rc = code if isinstance(code, int) else (0 if code is None else 1)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    try:
        with _lock(jdir, timeout=10):
            raw = _read_status(jdir)
            if raw.get("state") not in ACTIVE or raw.get("pid") != os.getpid():
                return  # a worker recorded the outcome, or this is not our job
            now = time.time()
            raw.update(state="finished" if rc == 0 else "failed", ended=now, heartbeat=now,
                       returncode=rc, reason=None if rc == 0 else "exit",
                       error=None if rc == 0 else (_last_error_line(_log_tail(jdir))
                                                   or f"The command exited with status {rc}."))
            _write_status(jdir, raw)
    except (SelfGuideError, OSError) as exc:  # never mask the command's own outcome
        print(f"warning: job exit not recorded: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------- launcher side

def start(run: str | os.PathLike, stage: str, argv: Sequence[str], *,
          workspace: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
          module: str = "selfguide", cwd: str | os.PathLike | None = None) -> JobStatus:
    """Start ``python -m <module> *argv`` as the ``stage`` job of ``run``.

    The child runs in a new session (its own process group), with stdout and stderr going
    to ``jobs/<stage>/log.txt``. ``env`` adds to (never replaces) this process's
    environment and is not written anywhere. Raises ``JobAlreadyRunning`` if a live job
    exists for the same run and stage; a double click therefore starts exactly one worker.
    """
    _check_stage(stage)
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", module):
        raise JobError(f"Invalid module name {module!r}.")
    argv = [str(a) for a in argv]
    run_dir = _run_dir(run, workspace, create=True)
    jdir = job_dir(run_dir, stage)
    try:
        jdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise store._storage_error(exc, jdir) from exc
    child_env = dict(os.environ)
    if workspace is not None:
        child_env[store.WORKSPACE_ENV] = str(store.workspace_dir(workspace))
    child_env.update({k: str(v) for k, v in (env or {}).items()})
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    child_env[JOB_DIR_ENV] = str(jdir)  # lets the child record its exit (run_as_job)
    with _lock(jdir):
        _reap(jdir)
        prev = _read_status(jdir)
        if prev.get("state") in ACTIVE and _alive(prev):
            raise JobAlreadyRunning(
                f"A {stage} job for run {run_dir.name!r} is already running "
                f"(pid {prev.get('pid')}).",
                hint="Wait for it to finish, or cancel it before starting again.")
        with contextlib.suppress(FileNotFoundError):
            (jdir / "events.jsonl").unlink()
        log_path = jdir / "log.txt"
        try:
            log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
        except OSError as exc:
            raise store._storage_error(exc, log_path) from exc
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, *argv], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, env=child_env, cwd=cwd,
                start_new_session=True, close_fds=True)
        except OSError as exc:
            raise JobError(f"Could not start the {stage} job: {exc}.") from exc
        finally:
            log.close()
        _CHILDREN[str(jdir)] = proc
        now = time.time()
        try:
            _write_status(jdir, {
                "run": run_dir.name, "stage": stage, "state": "starting", "pid": proc.pid,
                "pgid": proc.pid, "create_time": _proc_create_time(proc.pid),
                "host": socket.gethostname(), "launched": now, "argv": argv,
                "started": now, "heartbeat": now, "heartbeat_interval": _heartbeat_interval(),
                "ended": None, "error": None, "reason": None})
        except StorageError:
            _kill_group(proc.pid, proc.pid, timeout=KILL_AFTER_S)
            raise
    return status(run_dir, stage)


def status(run: str | os.PathLike, stage: str, *,
           workspace: str | os.PathLike | None = None) -> JobStatus:
    """The current state of the ``stage`` job of ``run`` (cheap; safe to poll)."""
    run_dir = _run_dir(run, workspace)
    jdir = job_dir(run_dir, stage)
    rc = _reap(jdir)
    try:
        raw = _read_status(jdir)
    except CorruptFile:  # a torn status cannot happen with atomic writes; be explicit anyway
        raw = {"state": "interrupted", "error": f"{jdir / 'status.json'} is unreadable."}
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
        _derive_active(st, raw)
    return st


def _derive_active(st: JobStatus, raw: Mapping[str, Any]) -> None:
    alive = _alive(raw)
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
    if not alive:
        st.state = "interrupted"
        st.reason = "died"
        st.error = (f"The worker (pid {st.pid}) stopped without reporting a result "
                    "(killed or crashed). Start it again to resume.")
        last = _last_error_line(st.log_tail)
        if last and ("error" in last.lower()):
            st.error += f" Last log line: {last}"
    elif age > STALE_AFTER * interval:
        st.state = "interrupted"
        st.reason = "stale"
        st.error = (f"No heartbeat from the worker (pid {st.pid}) for {age:.0f} s; it is "
                    "hung or stopped. Cancel it and start again.")


def events(run: str | os.PathLike, stage: str, *,
           workspace: str | os.PathLike | None = None,
           types: tuple[str, ...] | None = None) -> list[dict]:
    """All committed events of the latest ``stage`` job (optionally only ``types``)."""
    from selfguide.events import read_events

    path = job_dir(_run_dir(run, workspace), stage) / "events.jsonl"
    return read_events(path, types)


def list_jobs(run: str | os.PathLike, *,
              workspace: str | os.PathLike | None = None) -> list[JobStatus]:
    """The status of every stage that has a job directory in ``run``."""
    run_dir = _run_dir(run, workspace)
    base = run_dir / "jobs"
    if not base.is_dir():
        return []
    return [status(run_dir, p.name) for p in sorted(base.iterdir())
            if p.is_dir() and _STAGE_RE.match(p.name)]


# --------------------------------------------------------------------------- cancel

def _group_pids(pgid: int) -> set[int]:
    import psutil

    out = set()
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError, OSError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.add(proc.pid)
    return out


def _descendants(pid: int) -> set[int]:
    import psutil

    with contextlib.suppress(psutil.Error):
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    return set()


def _signal_all(pgid: int | None, pids: set[int], sig: int) -> None:
    if pgid and pgid != os.getpgrp():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for pid in pids:
        if pid != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def _living(pgid: int | None, pids: set[int]) -> set[int]:
    import psutil

    alive = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
    if pgid and pgid != os.getpgrp():
        alive |= _group_pids(pgid)
    return alive


def _wait_gone(pid: int, pgid: int | None, pids: set[int], timeout: float) -> set[int]:
    """Wait up to ``timeout`` s for the processes to end; the survivors."""
    deadline = time.time() + timeout
    while True:
        for proc in list(_CHILDREN.values()):
            if proc.pid == pid:
                proc.poll()  # reap our own child, or it stays a zombie
        left = _living(pgid, pids)
        if not left or time.time() >= deadline:
            return left
        time.sleep(0.1)


def _kill_group(pid: int, pgid: int | None, timeout: float) -> set[int]:
    """SIGTERM the group (and known descendants), SIGKILL after ``timeout``; survivors."""
    pids = {pid} | _descendants(pid)
    if pgid and pgid != os.getpgrp():
        pids |= _group_pids(pgid)
    _signal_all(pgid, pids, signal.SIGTERM)
    if not _wait_gone(pid, pgid, pids, timeout):
        return set()
    pids |= _descendants(pid)
    _signal_all(pgid, pids, signal.SIGKILL)
    return _wait_gone(pid, pgid, pids, 5.0)


def cancel(run: str | os.PathLike, stage: str, *, timeout: float = KILL_AFTER_S,
           workspace: str | os.PathLike | None = None) -> JobStatus:
    """Stop the ``stage`` job of ``run``: SIGTERM its process group, SIGKILL after
    ``timeout`` seconds, and record ``cancelled``. A job that is not running is left as is.
    """
    run_dir = _run_dir(run, workspace)
    jdir = job_dir(run_dir, stage)
    raw = _read_status(jdir)
    if raw.get("state") not in ACTIVE:
        return status(run_dir, stage)
    if _alive(raw) and raw.get("host") in (None, socket.gethostname()):
        left = _kill_group(int(raw["pid"]), raw.get("pgid"), timeout)
        if left:
            raise JobError(f"Could not stop the {stage} job: processes {sorted(left)} survive "
                           "SIGKILL.", hint="Check them with 'ps' and stop them by hand.")
    _reap(jdir)
    with _lock(jdir):
        raw = _read_status(jdir)
        if raw.get("state") in ACTIVE:  # killed before it could record the cancellation
            raw.update(state="cancelled", reason="cancelled", ended=time.time(),
                       error="Cancelled by the user.")
            _write_status(jdir, raw)
    return status(run_dir, stage)
