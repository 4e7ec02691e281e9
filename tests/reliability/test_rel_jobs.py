"""The job runner (:mod:`selfguide.jobs`): idempotent start, re-attach, cancel without
orphans, heartbeat-based interruption, failure reporting and secret hygiene.

RELIABILITY.md risks 15, 16, 17, 23, 24 and "Bad inputs" 9a/10/11 (double click, two tabs,
second server). Workers are ``tests/reliability/jobworker.py`` (the real
``jobs.worker`` context manager, no model) started through the real ``jobs.start``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from selfguide import jobs
from selfguide.errors import JobAlreadyRunning
from selfguide.jobs import state as job_state
from selfguide.runs import store

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SECRET = "hf_TESTSECRETdoNotLeak0123456789abcdef"
CHILD_ENV = {"PYTHONPATH": f"{HERE}{os.pathsep}{REPO}", "SELFGUIDE_HEARTBEAT_S": "0.5"}


def wait_for(pred, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture()
def run_dir(workspace):
    path = store.resolve_run_dir("job-test", workspace, create=True)
    yield path
    for st in jobs.list_jobs(path):  # never leave a worker behind
        if st.active:
            jobs.cancel(path, st.stage, timeout=1.0)


def launch(run_dir, mode, seconds=30.0, stage="synthesize", **kw):
    return jobs.start(run_dir, stage, [str(run_dir), stage, mode, str(seconds)],
                      module="jobworker", env={**CHILD_ENV, **kw.pop("env", {})}, **kw)


def state(run_dir, stage="synthesize"):
    return jobs.status(run_dir, stage).state


def workers_of(run_dir) -> list[int]:
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if "jobworker" in cmd and str(run_dir) in cmd:
            out.append(p.pid)
    return out


# --------------------------------------------------------------------------- start

def test_start_is_idempotent(run_dir):
    first = launch(run_dir, "sleep")
    assert first.state in ("starting", "running") and first.pid
    with pytest.raises(JobAlreadyRunning, match="already running") as info:
        launch(run_dir, "sleep")
    assert "Hint:" in str(info.value)
    wait_for(lambda: state(run_dir) == "running")
    with pytest.raises(JobAlreadyRunning):
        launch(run_dir, "sleep")  # "refresh, then Start again"
    assert workers_of(run_dir) == [first.pid]


_STARTER = r"""
import sys, time
from pathlib import Path
from selfguide import jobs
from selfguide.errors import JobAlreadyRunning
run_dir, env = Path(sys.argv[1]), {"PYTHONPATH": sys.argv[2], "SELFGUIDE_HEARTBEAT_S": "0.5"}
while time.time() < float(sys.argv[3]):
    time.sleep(0.001)
try:
    st = jobs.start(run_dir, "synthesize", [str(run_dir), "synthesize", "sleep", "30"],
                    module="jobworker", env=env)
    print("started", st.pid)
except JobAlreadyRunning:
    print("refused")
"""


def test_concurrent_starts_from_two_processes_start_one_worker(run_dir):
    """Two studio servers (or tabs) press Start at the same instant: one worker."""
    go = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", _STARTER, str(run_dir),
                               CHILD_ENV["PYTHONPATH"], str(go)],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = sorted(p.communicate(timeout=60)[0].split()[0] for p in procs)
    assert outs == ["refused", "started"]
    wait_for(lambda: state(run_dir) == "running")
    assert len(workers_of(run_dir)) == 1


def test_lifecycle_finished_with_progress_and_events(run_dir):
    launch(run_dir, "sleep", seconds=1.0)
    wait_for(lambda: state(run_dir) == "finished", timeout=20)
    st = jobs.status(run_dir, "synthesize")
    assert st.progress["done"] == st.progress["total"] == 10
    assert st.error is None and st.ended >= st.started
    assert "done" in st.log_tail
    types = [e["type"] for e in jobs.events(run_dir, "synthesize")]
    assert types[0] == "status" and types[-1] == "status" and types.count("progress") == 10
    assert [j.stage for j in jobs.list_jobs(run_dir)] == ["synthesize"]
    again = launch(run_dir, "sleep", seconds=0.2)  # a finished job can be started again
    assert again.state in ("starting", "running", "finished")


@pytest.mark.parametrize("mode,reason,needle", [
    ("fail", "ConfigError", "Invalid value for 'max_new_tokens'"),
    ("crash", "crash", "RuntimeError: boom from the test worker"),
    ("diskfull", "disk_full", "Disk full while writing"),
])
def test_failures_are_reported(run_dir, mode, reason, needle):
    launch(run_dir, mode, stage="train")
    wait_for(lambda: state(run_dir, "train") == "failed", timeout=20)
    st = jobs.status(run_dir, "train")
    assert needle in st.error and st.reason == reason
    if mode == "diskfull":
        assert str(run_dir / "inputs.jsonl") in st.error  # the message names the path


def test_startup_failure_is_failed_not_running(run_dir):
    """A stage command that dies before jobs.worker (bad arguments) reads as failed, with
    the CLI's error line, not as 'starting' forever."""
    jobs.start(run_dir, "eval", ["no-such-command"], env=CHILD_ENV)
    wait_for(lambda: state(run_dir, "eval") == "failed", timeout=20)
    st = jobs.status(run_dir, "eval")
    assert "invalid choice" in st.error and st.reason == "exit"


def test_worker_refuses_a_second_live_worker(run_dir):
    """The CLI run by hand while the studio's job runs: the second worker refuses."""
    first = launch(run_dir, "sleep")
    wait_for(lambda: state(run_dir) == "running")
    env = {**os.environ, **CHILD_ENV}
    res = subprocess.run([sys.executable, "-m", "jobworker", str(run_dir), "synthesize",
                          "sleep", "1"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode != 0 and "JobAlreadyRunning" in res.stderr
    st = jobs.status(run_dir, "synthesize")
    assert st.state == "running" and st.pid == first.pid


# --------------------------------------------------------------------------- re-attach

_STATUS = r"""
import sys, json
from selfguide import jobs
st = jobs.status(sys.argv[1], "synthesize", workspace=sys.argv[2])
print(json.dumps({"state": st.state, "pid": st.pid, "progress": st.progress}))
"""


def test_refresh_reattaches_from_a_fresh_process(run_dir, workspace):
    first = launch(run_dir, "sleep")
    t0 = time.monotonic()

    def seen():
        res = subprocess.run([sys.executable, "-c", _STATUS, "job-test", str(workspace)],
                             capture_output=True, text=True, timeout=30,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        out = json.loads(res.stdout)
        return out if out["state"] == "running" and out["progress"] else None

    out = wait_for(seen, timeout=10)
    assert time.monotonic() - t0 < 5.0
    assert out["pid"] == first.pid and out["progress"]["done"] >= 1


# --------------------------------------------------------------------------- cancel

def _group_alive(pgid: int) -> list[int]:
    alive = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
        except (psutil.Error, ProcessLookupError):
            pass
    return alive


def test_cancel_kills_whole_process_group(run_dir):
    """Worker + a grandchild that ignores SIGTERM + `sleep 600`: all gone within 10 s."""
    st = launch(run_dir, "spawn")
    kids_file = run_dir / "kids.txt"
    wait_for(lambda: kids_file.exists() and state(run_dir) == "running", timeout=20)
    kids = [int(x) for x in kids_file.read_text().split()]
    pgid = st.pgid
    assert set(kids) | {st.pid} <= set(_group_alive(pgid))
    t0 = time.monotonic()
    done = jobs.cancel(run_dir, "synthesize")
    elapsed = time.monotonic() - t0
    assert elapsed < 10.0
    assert _group_alive(pgid) == []
    for pid in [st.pid, *kids]:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert done.state == "cancelled"
    print(f"cancel of 3-process group took {elapsed:.2f} s")


def test_cancel_is_graceful_when_the_worker_listens(run_dir):
    launch(run_dir, "sleep")
    wait_for(lambda: state(run_dir) == "running", timeout=20)
    t0 = time.monotonic()
    st = jobs.cancel(run_dir, "synthesize")
    assert time.monotonic() - t0 < 3.0  # SIGTERM was enough, no 5 s SIGKILL wait
    assert st.state == "cancelled" and "cancelled" in st.error
    assert jobs.events(run_dir, "synthesize")[-1] == {**jobs.events(run_dir, "synthesize")[-1],
                                                      "type": "status", "state": "cancelled"}


def test_a_cancel_that_library_code_re_raises_is_still_a_cancel(run_dir):
    """A SIGTERM landing inside code that wraps exceptions (transformers' lazy imports turn
    any into a RuntimeError) ended the job as failed; it is cancelled."""
    launch(run_dir, "wraps")
    wait_for(lambda: (run_dir / "wrapping.txt").exists(), timeout=20)
    st = jobs.cancel(run_dir, "synthesize")
    assert st.state == "cancelled" and st.reason == "cancelled"
    assert "cancelled (signal" in st.error
    assert jobs.events(run_dir, "synthesize")[-1]["state"] == "cancelled"


def test_cancel_escalates_to_sigkill(run_dir):
    st = launch(run_dir, "stubborn")
    wait_for(lambda: (run_dir / "ignoring.txt").exists(), timeout=20)
    t0 = time.monotonic()
    done = jobs.cancel(run_dir, "synthesize", timeout=1.0)
    assert 1.0 <= time.monotonic() - t0 < 10.0
    assert done.state == "cancelled" and not _group_alive(st.pgid)


# --------------------------------------------------------------------------- heartbeat

def test_kill9_marks_interrupted_and_allows_restart(run_dir):
    st = launch(run_dir, "sleep")
    wait_for(lambda: state(run_dir) == "running", timeout=20)
    os.kill(st.pid, signal.SIGKILL)
    wait_for(lambda: state(run_dir) == "interrupted", timeout=5)
    got = jobs.status(run_dir, "synthesize")
    assert got.reason == "died" and "Start it again" in got.error
    assert "SIGKILL" in got.error and "out of memory" in got.error  # our child: its signal
    again = launch(run_dir, "sleep", seconds=0.2)
    assert again.pid != st.pid
    wait_for(lambda: state(run_dir) == "finished", timeout=20)


def test_a_worker_that_ends_while_its_status_is_read_is_finished_not_died(run_dir,
                                                                       monkeypatch):
    """The worker writes its final status, then exits. A poll that read "running" just
    before that write and checks the process just after the exit must not report a
    worker that died without a result (seen once in CI: the e2e evaluation job)."""
    st = launch(run_dir, "sleep", seconds=1.0)
    wait_for(lambda: state(run_dir) == "running", timeout=20)
    real_alive = job_state._alive
    proc = psutil.Process(st.pid)

    def alive_after_the_worker_ended(raw):
        if raw.get("pid") == st.pid:  # the poll was slow: the worker finished meanwhile
            wait_for(lambda: not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE,
                     timeout=20)
        return real_alive(raw)

    monkeypatch.setattr(job_state, "_alive", alive_after_the_worker_ended)
    got = jobs.status(run_dir, "synthesize")
    assert got.state == "finished", (got.state, got.error)


def test_a_crashed_worker_says_so_with_its_python_stack_in_the_log(run_dir):
    """A native crash (SIGSEGV) leaves the fault handler's stack in log.txt and the status
    names the crash and that line, not a bare 'killed or crashed'."""
    st = launch(run_dir, "sleep")
    wait_for(lambda: state(run_dir) == "running", timeout=20)
    os.kill(st.pid, signal.SIGSEGV)
    got = wait_for(lambda: (s := jobs.status(run_dir, "synthesize")).state == "interrupted"
                   and s, timeout=10)
    assert "crashed: SIGSEGV" in got.error, got.error
    assert "Last log line: Fatal Python error: Segmentation fault" in got.error, got.error
    assert "File " in got.log_tail  # the worker's Python stack


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc start ticks")
@pytest.mark.parametrize("step_s", [45.0, -45.0])
def test_a_stepped_wall_clock_never_turns_a_running_worker_into_a_dead_or_hung_one(
        run_dir, monkeypatch, step_s):
    """NTP or a restored / forked VM steps the wall clock: psutil's create_time (boot time
    from the wall clock) and the wall-clock heartbeat move with it. The worker recorded
    both before the step; the reader judges after it. Still running, not interrupted (the
    studio stopped polling on a worker it took for dead: seen once in CI)."""
    import psutil._pslinux as pslinux

    st = launch(run_dir, "sleep")
    wait_for(lambda: state(run_dir) == "running", timeout=20)
    real_boot, real_time = pslinux.boot_time, time.time
    monkeypatch.setattr(pslinux, "boot_time", lambda: real_boot() + step_s)
    monkeypatch.setattr(job_state.time, "time", lambda: real_time() + step_s)
    for _ in range(3):
        got = jobs.status(run_dir, "synthesize")
        assert got.state == "running", (got.state, got.error)
        time.sleep(0.3)
    assert job_state._alive(json.loads((jobs.job_dir(run_dir, "synthesize")
                                        / "status.json").read_text()))
    jobs.cancel(run_dir, "synthesize", timeout=5.0)  # cancel recognises it too
    assert state(run_dir) == "cancelled" and not _group_alive(st.pgid)


def test_stale_heartbeat_marks_interrupted_but_blocks_a_second_start(run_dir):
    st = launch(run_dir, "sleep")
    wait_for(lambda: state(run_dir) == "running", timeout=20)
    # "running" is written inside the start lock: let the worker leave that block first
    # (on a loaded machine a stop right after the write would freeze it holding the lock)
    with job_state._lock(jobs.job_dir(run_dir, "synthesize"), timeout=20):
        pass
    os.kill(st.pid, signal.SIGSTOP)  # hung: alive, but no heartbeat
    try:
        got = wait_for(lambda: (s := jobs.status(run_dir, "synthesize")).state == "interrupted"
                       and s, timeout=5)
        assert got.reason == "stale" and "heartbeat" in got.error
        with pytest.raises(JobAlreadyRunning):  # the process is alive: never a second worker
            launch(run_dir, "sleep")
    finally:
        os.kill(st.pid, signal.SIGCONT)
    wait_for(lambda: state(run_dir) == "running", timeout=5)


def test_stale_temps_cleaned_at_worker_start(run_dir):
    tmp = run_dir / ".candidates.parquet.abc123.tmp"
    tmp.write_bytes(b"half a parquet")
    os.utime(tmp, (time.time() - 3600, time.time() - 3600))
    launch(run_dir, "sleep", seconds=0.1)
    wait_for(lambda: state(run_dir) == "finished", timeout=20)
    assert not tmp.exists()


# --------------------------------------------------------------------------- secrets

def test_no_secret_in_workspace(run_dir, workspace, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    launch(run_dir, "env", seconds=0.2, env={"HUGGING_FACE_HUB_TOKEN": SECRET})
    wait_for(lambda: state(run_dir) == "finished", timeout=20)
    assert "token present: True" in jobs.status(run_dir, "synthesize").log_tail
    launch(run_dir, "crash", stage="train")
    wait_for(lambda: state(run_dir, "train") == "failed", timeout=20)
    files = [p for p in workspace.rglob("*") if p.is_file()]
    assert len(files) >= 6
    leaks = [p for p in files if SECRET.encode() in p.read_bytes()]
    assert leaks == []


def test_invalid_stage_and_run_names_refused(workspace):
    from selfguide.errors import InvalidRunName, JobError

    with pytest.raises(InvalidRunName):
        jobs.start("../../etc", "synthesize", ["runs"])
    with pytest.raises(JobError, match="stage"):
        jobs.start("ok-run", "../x", ["runs"])
    assert not (workspace / "runs" / "ok-run" / "jobs").exists()


def test_cancel_during_model_load_real_cli(run_dir, tiny_model_dir):
    """Cancel a real ``selfguide train`` once it runs (loading the model or training)."""
    store.atomic_write_text(run_dir / "dataset" / "train.jsonl",
                            "".join(json.dumps({"id": f"r{i}", "prompt": "the cat sat",
                                                "completion": f"on the mat {i}"}) + "\n"
                                    for i in range(64)))
    store.atomic_write_json(run_dir / "config.json",
                            {"model": {"model": str(tiny_model_dir), "device": "cpu"}})
    # 64 rows x 100 epochs: long enough that the cancel lands before training could end
    # (8 rows once finished between the 'running' claim and the cancel on a fast machine).
    st = jobs.start(run_dir, "train", ["train", "--run", run_dir.name, "--method", "lora",
                                       "--precision", "fp32", "--epochs", "100"],
                    env=CHILD_ENV)
    wait_for(lambda: state(run_dir, "train") == "running", timeout=30)
    t0 = time.monotonic()
    done = jobs.cancel(run_dir, "train")
    assert time.monotonic() - t0 < 10.0
    assert done.state == "cancelled" and not _group_alive(st.pgid)
    assert not (run_dir / "train" / "adapter").exists()


@pytest.mark.parametrize("argv,want,needle", [
    (["runs"], "finished", None),  # a command without a worker
    (["synthesize", "/nonexistent/task.json", "--run", "job-test"], "failed", "error:"),
])
def test_exit_recorded_without_a_worker(run_dir, monkeypatch, argv, want, needle):
    """Seen from another process (no Popen to ask), the state still comes from the child's
    own exit record, not from guessing."""
    jobs.start(run_dir, "misc", argv, env=CHILD_ENV)
    monkeypatch.setattr(job_state, "_CHILDREN", {})
    st = wait_for(lambda: (s := jobs.status(run_dir, "misc")).done and s, timeout=30)
    assert st.state == want
    if needle:
        assert needle in st.error and "task.json" in st.error


# --------------------------------------------------------------------------- progress tail

_EV_LINES = hst.lists(hst.one_of(
    hst.builds(lambda d: {"type": "progress", "done": d}, hst.integers(0, 10**6)),
    hst.builds(lambda m: {"type": "log", "message": m}, hst.text(max_size=40)),
    hst.just("{corrupt"),
), max_size=30)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(events=_EV_LINES, tail=hst.binary(max_size=30), chunk=hst.integers(1, 64))
def test_last_progress_event_read_from_the_end(events, tail, chunk):
    """The backwards reader used by ``status()`` agrees with a full forward parse, for any
    chunk size, corrupt lines and a torn tail (no newline)."""
    import tempfile

    body = b"".join((e if isinstance(e, str) else json.dumps(e, ensure_ascii=False)).encode()
                    + b"\n" for e in events)
    tail = tail.replace(b"\n", b"")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "events.jsonl"
        path.write_bytes(body + tail)
        want = [e for e in events if isinstance(e, dict) and e["type"] == "progress"]
        assert job_state._last_event(path, "progress", chunk=chunk) == (want[-1] if want else None)


# --------------------------------------------------------------------------- stage lifecycle

def _stage(run_dir, stage):
    return store.read_manifest(run_dir).get("stages", {}).get(stage) or {}


def test_worker_owns_the_manifest_stage_with_the_job_status(run_dir):
    """``manifest=True``: the worker writes the manifest stage and status.json together:
    running (with its info) while the body runs, then done plus what the body recorded."""
    with jobs.worker(run_dir, "train", manifest=True, config_hash="abc") as events:
        assert _stage(run_dir, "train")["status"] == "running"
        assert _stage(run_dir, "train")["config_hash"] == "abc"
        assert jobs.status(run_dir, "train").state == "running"
        events.record(rows=3, steps=2)
    entry = _stage(run_dir, "train")
    assert entry["status"] == "done" and entry["rows"] == 3 and entry["config_hash"] == "abc"
    assert jobs.status(run_dir, "train").state == "finished"


@pytest.mark.parametrize("exc,job_state_want", [(RuntimeError("boom"), "failed"),
                                                (KeyboardInterrupt(), "cancelled")])
def test_worker_marks_the_manifest_stage_failed_on_error_or_cancel(run_dir, exc,
                                                                   job_state_want):
    with pytest.raises(type(exc)):
        with jobs.worker(run_dir, "eval", manifest=True) as events:
            events.record(metric="accuracy")  # dropped: the stage did not finish
            raise exc
    entry = _stage(run_dir, "eval")
    assert entry["status"] == "failed" and "metric" not in entry
    assert jobs.status(run_dir, "eval").state == job_state_want


def test_worker_without_manifest_leaves_the_manifest_alone(run_dir):
    with jobs.worker(run_dir, "export-model"):
        pass
    assert _stage(run_dir, "export-model") == {}


def test_a_refused_worker_does_not_touch_the_manifest(run_dir):
    launch(run_dir, "sleep", stage="train")
    wait_for(lambda: state(run_dir, "train") == "running")
    store.set_stage(run_dir, "train", "done", rows=1)
    with pytest.raises(JobAlreadyRunning):
        with jobs.worker(run_dir, "train", manifest=True):
            pass
    assert _stage(run_dir, "train")["status"] == "done"
