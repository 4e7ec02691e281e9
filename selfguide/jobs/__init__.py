"""Background jobs: one subprocess per long stage, observable and cancellable from disk.

Every long stage (synthesize, self-instruct, train, eval, run) is a CLI command
``python -m selfguide <stage> --run NAME …``. The studio starts it with :func:`start`, polls
it with :func:`status`/:func:`events` (a browser refresh simply polls again: nothing lives
in the Streamlit session) and stops it with :func:`cancel`.

Files, per run and stage, in ``<run>/jobs/<stage>/``::

    status.json   state, pid, pgid, start_ticks, started, heartbeat, ended, error (atomic
                  rewrites)
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
intervals: kill -9, OOM killer, power loss). The worker's process is recognised by its
start in clock ticks since boot and its heartbeat aged by the monotonic clock, so a stepped
wall clock (NTP, a restored or forked VM) never reads as a dead or hung worker; a worker
seen gone has its status read again, as it writes its end just before it exits; its exit
signal is named where this process started it, and job processes run with Python's fault
handler, so a native crash leaves its stack in ``log.txt`` (:mod:`selfguide.jobs.proc`).

What it does not do: decide what a stage computes, retry, or schedule several jobs. The
child's environment (which may hold ``HF_TOKEN``) is passed to the process only and never
written to any file here.
"""

from selfguide.jobs.child import JobEvents, run_as_job, worker
from selfguide.jobs.launch import cancel, start
from selfguide.jobs.state import (
    ACTIVE,
    DEFAULT_HEARTBEAT_S,
    FINAL,
    HEARTBEAT_ENV,
    INPUT_WRITERS,
    JOB_DIR_ENV,
    KILL_AFTER_S,
    STALE_AFTER,
    STATES,
    JobStatus,
    check_inputs_idle,
    events,
    job_dir,
    list_jobs,
    status,
)

__all__ = ["ACTIVE", "DEFAULT_HEARTBEAT_S", "FINAL", "HEARTBEAT_ENV", "INPUT_WRITERS",
           "JOB_DIR_ENV", "KILL_AFTER_S", "STALE_AFTER", "STATES", "JobEvents", "JobStatus",
           "cancel", "check_inputs_idle", "events", "job_dir", "list_jobs", "run_as_job",
           "start", "status", "worker"]
