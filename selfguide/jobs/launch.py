"""The launcher side of a job: start a stage command as a subprocess, and cancel it.

What it does: :func:`start` runs ``python -m selfguide <stage> …`` in its own session with
its output in ``log.txt`` (a double click starts one worker); :func:`cancel` stops the whole
process group (SIGTERM, then SIGKILL) and records ``cancelled`` if the worker could not.

What it does not do: read job state (:mod:`selfguide.jobs.state`) or run the stage
(:mod:`selfguide.jobs.child`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from selfguide.errors import JobAlreadyRunning, JobError, StorageError
from selfguide.jobs import state
from selfguide.jobs.proc import _alive, _identity
from selfguide.jobs.state import (
    ACTIVE,
    JOB_DIR_ENV,
    KILL_AFTER_S,
    JobStatus,
    _beat,
    _check_stage,
    _heartbeat_interval,
    _lock,
    _read_status,
    _reap,
    _run_dir,
    _write_status,
    job_dir,
    status,
)
from selfguide.runs import store
from selfguide.runs.rundir import RunDir

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
    child_env = _child_env(jdir, workspace, env)
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
        proc = _spawn(jdir, stage, [sys.executable, "-m", module, *argv], child_env, cwd)
        now = time.time()
        try:
            _write_status(jdir, {
                "run": run_dir.name, "stage": stage, "state": "starting", "pid": proc.pid,
                "pgid": proc.pid, **_identity(proc.pid),
                "host": socket.gethostname(), "launched": now, "argv": argv,
                "started": now, **_beat(), "heartbeat_interval": _heartbeat_interval(),
                "ended": None, "error": None, "reason": None})
        except StorageError:
            _kill_group(proc.pid, proc.pid, timeout=KILL_AFTER_S)
            raise
    return status(run_dir, stage)


def _child_env(jdir: Path, workspace: str | os.PathLike | None,
               env: Mapping[str, str] | None) -> dict[str, str]:
    """This process's environment plus ``env``; never written to any file."""
    child_env = dict(os.environ)
    if workspace is not None:
        child_env[store.WORKSPACE_ENV] = str(store.workspace_dir(workspace))
    child_env.update({k: str(v) for k, v in (env or {}).items()})
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    # a crash in native code (torch, bitsandbytes, llama.cpp) leaves its Python stack in
    # log.txt, so the studio can say where a worker that died without a result was
    child_env.setdefault("PYTHONFAULTHANDLER", "1")
    child_env[JOB_DIR_ENV] = str(jdir)  # lets the child record its exit (run_as_job)
    return child_env


def _spawn(jdir: Path, stage: str, cmd: list[str], env: dict[str, str],
           cwd: str | os.PathLike | None) -> subprocess.Popen:
    """Start ``cmd`` in a new session with stdout + stderr in ``log.txt``."""
    log_path = jdir / "log.txt"
    try:
        log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    except OSError as exc:
        raise store._storage_error(exc, log_path) from exc
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True, close_fds=True)
    except OSError as exc:
        raise JobError(f"Could not start the {stage} job: {exc}.") from exc
    finally:
        log.close()
    state._CHILDREN[str(jdir)] = proc
    return proc


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
    deadline = time.monotonic() + timeout
    while True:
        for proc in list(state._CHILDREN.values()):
            if proc.pid == pid:
                proc.poll()  # reap our own child, or it stays a zombie
        left = _living(pgid, pids)
        if not left or time.monotonic() >= deadline:
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
            if raw.get("manifest") and RunDir(run_dir).stage_status(stage) == "running":
                RunDir(run_dir).set_stage(stage, "failed")  # the worker owned it: end it too
            raw.update(state="cancelled", reason="cancelled", ended=time.time(),
                       error="Cancelled by the user.")
            _write_status(jdir, raw)
    return status(run_dir, stage)
