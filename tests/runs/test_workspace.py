"""selfguide.runs.workspace: whole-run operations (create, save a task, rename, delete, export)
and selfguide.models.tryout's free-form try of a run's two models."""

from __future__ import annotations

import pytest

from selfguide.backends.fake import FakeGenerator
from selfguide.errors import InvalidRunName, TaskError
from selfguide.models import tryout
from selfguide.runs import names as runnames
from selfguide.runs import store
from selfguide.runs import workspace as sgworkspace
from selfguide.runs.rundir import RunDir
from selfguide.task.spec import TaskSpec

TASK = {"name": "Sentiment Task", "instruction": "Classify the sentiment as positive or "
        "negative.", "task_type": "classification", "labels": ["positive", "negative"],
        "metric": "exact_match",
        "demos": [{"input": "Great.", "output": "positive"},
                  {"input": "Awful.", "output": "negative"},
                  {"input": "Lovely.", "output": "positive"}]}


def test_save_task_creates_a_named_run_then_a_free_name(workspace):
    spec = TaskSpec.from_dict(TASK)
    first = sgworkspace.save_task(spec)
    assert first == runnames.slugify_run_name("Sentiment Task")
    rd = RunDir.named(first)
    assert rd.read_task() == spec
    man = rd.read_manifest()
    assert man["name"] == first and man["task"] == "Sentiment Task"
    assert sgworkspace.save_task(spec) == f"{first}-2"  # a second save: a new run
    assert sgworkspace.save_task(spec, first) == first  # into a named run: that run
    assert store.list_runs() == sorted([first, f"{first}-2"])


def test_create_and_rename_refuse_existing_names(workspace):
    sgworkspace.create_run("a")
    with pytest.raises(InvalidRunName):
        sgworkspace.create_run("a")
    sgworkspace.create_run("b")
    with pytest.raises(InvalidRunName):
        sgworkspace.rename_run("a", "b")
    assert sgworkspace.rename_run("a", "c") == "c"
    assert RunDir.named("c").read_manifest()["name"] == "c"
    assert store.list_runs() == ["b", "c"]


def test_try_both_wraps_the_input_in_the_task_prompt(workspace):
    run = sgworkspace.save_task(TaskSpec.from_dict(TASK), "r1")
    before, after = FakeGenerator(script="negative"), FakeGenerator(script="positive")
    out = tryout.try_both(RunDir.named(run), "What a film!", before, after, chat=True,
                          max_new_tokens=8)
    assert out["before"] == "negative" and out["after"] == "positive"
    assert "What a film!" in out["prompt"] and "positive or negative" in out["prompt"]
    assert before.calls[0].prompts == after.calls[0].prompts == [out["prompt"]]
    assert tryout.complete(after, "hi", max_new_tokens=4) == "positive"


def test_try_both_needs_a_task(workspace):
    rd = sgworkspace.create_run("empty")
    with pytest.raises(TaskError):
        tryout.try_both(rd, "x", FakeGenerator(), FakeGenerator())
