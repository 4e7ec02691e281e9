"""RunDir: the run layout in one place, typed readers and writers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from selfguide.errors import DatasetError, InvalidRunName, RunFileError, RunNotFound, TaskError
from selfguide.runs import store
from selfguide.runs.rundir import RunDir, as_run
from selfguide.task.spec import Demo, TaskSpec


def test_named_resolves_inside_workspace(workspace):
    run = RunDir.named("r1", create=True)
    assert run.path == store.runs_dir() / "r1" and run.exists() and run.name == "r1"
    with pytest.raises(InvalidRunName):
        RunDir.named("../escape")
    with pytest.raises(RunNotFound):
        RunDir.named("missing", must_exist=True)


def test_pathlike_and_equality(tmp_path):
    run = RunDir(tmp_path / "r")
    assert os.fspath(run) == str(tmp_path / "r")
    assert run / "x.json" == tmp_path / "r" / "x.json"
    assert run == tmp_path / "r" and run == RunDir(str(tmp_path / "r"))
    assert as_run(run) is run and as_run(tmp_path / "r") == run
    assert Path(run) == tmp_path / "r"


def test_task_roundtrip_and_missing(tmp_path):
    run = RunDir(tmp_path / "r").mkdir()
    assert run.read_task() is None
    with pytest.raises(TaskError):
        run.read_task(required=True)
    task = TaskSpec(name="t", instruction="Say it.", demos=(Demo("a", "b"),) * 3)
    run.write_task(task)
    assert run.read_task().to_dict() == task.to_dict()


def test_config_method_and_filters(tmp_path):
    run = RunDir(tmp_path / "r").mkdir()
    from selfguide import methods

    assert run.read_config() == {} and run.method is None  # the default method then
    assert methods.for_run(run).name == "selfguide"
    run.config_file.write_text("[1, 2]")  # not an object: an error naming it (issue 38),
    with pytest.raises(RunFileError, match=r"config.json holds a list"):  # never {}
        run.read_config()
    run.write_config({"method": "selfinstruct", "filters": {"a": 1}})
    assert run.method == "selfinstruct" and run.saved_filters() == {"a": 1}


def test_overrides_only_booleans(tmp_path):
    run = RunDir(tmp_path / "r").mkdir()
    assert run.read_overrides() == {}
    run.overrides_file.write_text(json.dumps({"a": True, "b": "false", "c": False}))
    assert run.read_overrides() == {"a": True, "c": False}
    assert run.write_overrides({"a": None, "c": True}) == {"c": True}
    assert run.read_overrides() == {"c": True}


def test_records_and_stage(tmp_path):
    run = RunDir(tmp_path / "r").mkdir()
    assert not run.has_dataset() and run.read_records("val") == []
    with pytest.raises(DatasetError, match="No dataset"):
        run.read_records()
    with pytest.raises(DatasetError, match="Unknown split"):
        run.read_records("test")
    store.append_jsonl(run.records_file(), [{"prompt": "p", "completion": "c"}])
    assert run.has_dataset() and run.read_records() == [{"prompt": "p", "completion": "c"}]
    run.set_stage("synthesize", "done", kept=1)
    assert run.stage_status("synthesize") == "done" and run.stage_status("train") is None
    assert not run.has_adapter() and run.read_metrics() is None and run.read_predictions() == []
