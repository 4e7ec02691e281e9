"""The worker side of a job: inside the stage command, the one writer of its state.

What it does: :func:`worker` claims the stage (refusing a second live worker), writes
``running`` with a heartbeat from a daemon thread, turns SIGTERM into
:class:`~selfguide.errors.Cancelled` and records ``finished`` / ``failed`` / ``cancelled``
on the way out. With ``manifest=True`` it also writes the run manifest's stage state
(``running`` → ``done``/``failed``, plus what the body passes to :meth:`JobEvents.record`)
next to ``status.json``, so the two cannot disagree. :func:`run_as_job` records the exit of a
process started by :func:`selfguide.jobs.start` whose command never reached a worker.

What it does not do: decide what a stage computes, or start processes
(:mod:`selfguide.jobs.launch`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selfguide.errors import Cancelled, JobAlreadyRunning, SelfGuideError, StorageError
from selfguide.jobs.proc import _alive, _identity
from selfguide.jobs.state import (
    ACTIVE,
    JOB_DIR_ENV,
    _beat,
    _check_stage,
    _heartbeat_interval,
    _last_error_line,
    _lock,
    _log_tail,
    _read_status,
    _write_status,
    job_dir,
)
from selfguide.runs import store
from selfguide.runs.events import EventLog
from selfguide.runs.rundir import RunDir

# job state -> the run manifest's stage status (a cancelled stage did not finish: failed)
MANIFEST_STATUS = {"finished": "done", "failed": "failed", "cancelled": "failed"}


class JobEvents(EventLog):
    """The :class:`EventLog` a :func:`worker` yields. :meth:`record` adds fields to the
    manifest stage entry the worker writes when the body finishes (``manifest=True``)."""

    def __init__(self, path: str | os.PathLike | None):
        super().__init__(path)
        self.stage_info: dict[str, Any] = {}

    def record(self, **info: Any) -> None:
        self.stage_info.update(info)


# --------------------------------------------------------------------------- worker side

class _Worker:
    def __init__(self, run_dir: Path, stage: str, manifest: dict[str, Any] | None = None):
        self.run_dir = Path(run_dir)
        self.stage = _check_stage(stage)
        self.manifest = manifest  # None: the stage has no manifest entry (export-model, ...)
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
        self.signalled: int | None = None  # a SIGTERM was raised as Cancelled

    # heartbeat ------------------------------------------------------------
    def _beat(self) -> None:
        warned = False
        while not self.stop.wait(self.interval):
            with self.lock:
                if self.stop.is_set():
                    return
                self.data.update(_beat())
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
        self.signalled = signum  # whatever library code turns the Cancelled into, it was this
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
    def enter(self) -> JobEvents:
        self._install()  # first, so a cancel during start-up is never lost
        try:
            self._claim()
        except BaseException:
            self._uninstall()
            raise
        self.events = JobEvents(self.jdir / "events.jsonl")
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
                "pid": me, "pgid": os.getpgrp(), **_identity(me),
                "host": socket.gethostname(),
                "launched": prev.get("launched") if launched_by_us else None,
                "argv": prev.get("argv") if launched_by_us else list(sys.argv[1:]),
                "started": now, **_beat(), "heartbeat_interval": self.interval,
                "ended": None, "error": None, "reason": None,
                "manifest": self.manifest is not None,
            }
            if self.manifest is not None:  # before status.json: a failed write claims nothing
                RunDir(self.run_dir).set_stage(self.stage, "running", **self.manifest)
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
        elif self.signalled is not None:  # the Cancelled re-raised as another error (a
            # library wraps what its imports raise: transformers' lazy modules, RuntimeError)
            state, reason = "cancelled", "cancelled"
            error = f"The {self.stage} job was cancelled (signal {self.signalled})."
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
                if self.manifest is not None:  # the manifest, then status.json: both or none
                    info = self.events.stage_info if state == "finished" else {}
                    RunDir(self.run_dir).set_stage(self.stage, MANIFEST_STATUS[state], **info)
                self.data.update(state=state, error=error, reason=reason, ended=time.time(),
                                 **_beat())
                _write_status(self.jdir, self.data)
        except StorageError as werr:
            print(f"warning: final job status not written: {werr}", file=sys.stderr)
        finally:
            self._uninstall()


@contextlib.contextmanager
def worker(run_dir: str | os.PathLike, stage: str, *, manifest: bool = False,
           **info: Any) -> Iterator[JobEvents]:
    """Run the body as the ``stage`` job of ``run_dir``; yields its :class:`JobEvents`.

    With ``manifest=True`` the worker also owns the stage's entry in the run manifest: it
    writes ``running`` (plus ``info``, e.g. ``config_hash``) as it claims the job and
    ``done`` (plus what the body passed to ``events.record``) or ``failed`` as it records
    the job's end, next to ``status.json``.

    Raises ``JobAlreadyRunning`` if another live process is the worker of this stage.
    Exceptions propagate unchanged after the final status is written.
    """
    w = _Worker(Path(run_dir), stage, dict(info) if manifest else None)
    events = w.enter()
    try:
        yield events
    except BaseException as exc:
        w.exit(exc)
        raise
    else:
        w.exit(None)


# --------------------------------------------------------------------------- child exit

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
