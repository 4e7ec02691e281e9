"""Issue 38, stages that overlap: the dependency table (``selfguide.jobs.state.
INPUT_WRITERS``) refuses a stage while one it reads from, or one that reads what it writes,
is running (filter / export-model / eval during train, train during filter), naming the
running job; and a stage whose inputs changed after it ran shows as stale in ``runs`` and
``compare`` with the command that refreshes it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest
from runfiles import ROWS, _main, make_run, snapshot  # tests/reliability/runfiles.py

from selfguide import jobs
from selfguide.jobs import state as job_state
from selfguide.runs.dataset import write_dataset
from selfguide.runs.stale import stale_stages


@pytest.fixture()
def live_job(workspace):
    """``start(run, stage)``: a job whose worker is a live (sleeping) process."""
    children = []

    def start(run, stage):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        children.append(child)
        jdir = jobs.job_dir(run, stage)
        jdir.mkdir(parents=True, exist_ok=True)
        job_state._write_status(jdir, {"state": "running", "pid": child.pid,
                                       "heartbeat": time.time(),
                                       "create_time": psutil.Process(child.pid).create_time(),
                                       "heartbeat_interval": 60})
        return child

    yield start
    for c in children:
        c.kill()
        c.wait()


@pytest.mark.parametrize("argv", [["filter", "--run", "r1"], ["eval", "--run", "r1"],
                                  ["export-model", "--run", "r1", "--out", "/nonexistent/x"],
                                  ["merge", "--run", "r1", "--out", "/nonexistent/x"]])
def test_refused_while_train_runs(live_job, capsys, argv):
    run = make_run()
    child = live_job(run, "train")
    before = snapshot(run)
    rc, out = _main(argv, capsys)
    assert rc == 2 and f"The train job of run 'r1' is running (pid {child.pid})" in out, out
    assert snapshot(run) == before


def test_train_refused_while_filter_runs(live_job, capsys):
    run = make_run()
    child = live_job(run, "filter")
    rc, out = _main(["train", "--run", "r1"], capsys)
    assert rc == 2 and f"The filter job of run 'r1' is running (pid {child.pid})" in out
    assert "train reads what it writes" in out


def test_the_table_read_both_ways():
    assert "filter" in job_state.input_writers("train")
    assert {"filter", "eval", "merge", "export-model"} <= set(
        job_state.conflicting_stages("train"))
    assert "train" in job_state.conflicting_stages("filter")  # train reads what filter writes


def test_a_finished_job_blocks_nothing(live_job):
    run = make_run()
    child = live_job(run, "train")
    child.kill()
    child.wait()
    jobs.check_inputs_idle(run.path, "filter")


def test_refilter_marks_training_and_evaluation_stale(workspace, capsys):
    run = make_run()
    assert stale_stages(run) == {}
    rc, out = _main(["runs"], capsys)
    assert rc == 0 and "stale" not in out
    write_dataset(run, ROWS[:2], [], {"task": "sent", "candidates": 3, "kept": 2, "train": 2,
                                      "val": 0})  # what a re-filter does
    stale = stale_stages(run)
    assert set(stale) == {"train", "eval"}
    assert stale["train"]["refresh"] == "selfguide train --run r1"
    assert stale["eval"]["refresh"] == "selfguide train --run r1, then selfguide eval --run r1"
    rc, out = _main(["runs"], capsys)
    assert rc == 0 and "train:done(stale)" in out and "eval:done(stale)" in out
    assert "train is stale: the dataset changed after this training" in out
    rc, out = _main(["runs", "--json"], capsys)
    assert set(json.loads(out)[0]["stale"]) == {"train", "eval"}
    rc, out = _main(["compare", "r1"], capsys)
    assert rc == 0 and "r1: the evaluation is STALE: its training is stale" in out


def test_retrain_marks_only_the_evaluation_stale(workspace, capsys):
    run = make_run()
    man = json.loads(run.adapter_manifest_file.read_text())
    run.adapter_manifest_file.write_text(json.dumps({**man, "created": 2.0}))  # a retrain
    assert set(stale_stages(run)) == {"eval"}
    rc, out = _main(["compare", "r1"], capsys)
    assert "the adapter was retrained after this evaluation" in out
    assert "refresh: selfguide eval --run r1" in out
