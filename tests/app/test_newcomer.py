"""Issue 15: the studio as a newcomer meets it. Defaults that match the README's "First
minutes", the settings of a running job after a reload, no silent overwrite of a run's
task, messages in the pages' words, Metric following Type, a method caption that matches
the settings."""

from __future__ import annotations

import json
import time

import pytest
from sgtest.pages import all_text, button, metric, write_status

from selfguide.runs import store
from studio.app import state

OTHER_TASK = {"name": "mine", "instruction": "Say whether the text is a question.",
              "task_type": "classification", "labels": ["yes", "no"], "metric": "exact_match",
              "examples": [{"input": "Is it late?", "output": "yes"},
                           {"input": "It is late.", "output": "no"},
                           {"input": "Why?", "output": "yes"}]}


def number(at, label):
    hits = [n for n in at.number_input if n.label == label]
    assert hits, f"no number input {label!r}; have {[n.label for n in at.number_input]}"
    return hits[0]


def load_example(at):
    at.switch_page("studio/pages/task.py").run()
    button(at, "Load example").click().run()
    assert not at.exception


# --------------------------------------------------------------------------- 1 · defaults

def test_task_page_offers_the_readmes_sentiment_example_first(app):
    at = app()
    at.switch_page("studio/pages/task.py").run()
    assert at.selectbox(key=state.widget_key("task", "example")).value == "sentiment.json"
    button(at, "Load example").click().run()
    assert at.text_input(key=state.widget_key("task", "name", 1)).value == "sentiment"


def test_finetune_page_starts_on_the_quick_preset(app, runs, job_recorder):
    runs.dataset("r1")
    at = app(run="r1")
    at.switch_page("studio/pages/finetune.py").run()
    assert not at.exception
    assert at.selectbox(key=state.widget_key("train", "preset")).value == "quick"
    assert number(at, "max steps").value == -1 and number(at, "epochs").value == 3.0
    button(at, "Launch training").click().run()
    assert "--max-steps" not in job_recorder.calls[0][2]  # quick trains by epochs


def test_compare_evaluates_every_held_out_example_of_the_example(app, runs, job_recorder):
    d = runs.dataset("r1")
    (d / "train" / "adapter").mkdir(parents=True)
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception
    assert number(at, "limit").value >= 20  # the sentiment example ships 20 held-out rows
    button(at, "Evaluate before / after").click().run()
    argv = job_recorder.calls[0][2]
    assert int(argv[argv.index("--limit") + 1]) >= 20


# --------------------------------------------------------------------------- 2 · running job

def test_finetune_reload_shows_the_running_jobs_settings(app, runs):
    d = runs.dataset("r1")
    write_status(d, "train", argv=["train", "--run", "r1", "--max-steps", "40",
                                   "--epochs", "2", "--lora-r", "8"])
    at = app(run="r1")  # a reload: a fresh session while the job runs
    at.switch_page("studio/pages/finetune.py").run()
    assert not at.exception
    assert "job state: `running`" in all_text(at)
    assert number(at, "max steps").value == 40
    assert number(at, "epochs").value == 2.0
    assert number(at, "lora r").value == 8
    assert at.selectbox(key=state.widget_key("train", "preset")).value == "custom"
    assert not at.warning and not at.error
    at.run()  # later refreshes keep them
    assert number(at, "max steps").value == 40


def test_finetune_settings_fall_back_to_the_runs_train_config(app, runs):
    d = runs.dataset("r1")
    store.atomic_write_json(d / "train" / "train_config.json",
                            {"train": {"max_steps": 12, "batch_size": 3}, "hash": "x"})
    write_status(d, "train", argv=[])
    at = app(run="r1")
    at.switch_page("studio/pages/finetune.py").run()
    assert number(at, "max steps").value == 12 and number(at, "batch size").value == 3


# --------------------------------------------------------------------------- 3 · overwrite

def test_loading_the_example_into_a_run_with_data_asks_and_defaults_to_a_new_run(app, runs,
                                                                                 workspace):
    d = runs.candidates("mine")
    before = (d / "task.json").read_text()
    at = app(run="mine")
    load_example(at)
    radio = at.radio(key=state.widget_key("task", "save_target.mine"))
    assert radio.value == "Save as a new run"
    assert "Save into run mine (replaces its task)" in radio.options
    assert any("replaces its task" in w.value for w in at.warning)
    button(at, "Save task to run").click().run()
    assert not at.exception
    assert (d / "task.json").read_text() == before  # the run with data is untouched
    assert sorted(store.list_runs()) == ["mine", "sentiment"]
    assert at.session_state[state.RUN_KEY] == "sentiment"


def test_replacing_a_runs_task_is_a_choice_the_user_makes(app, runs):
    d = runs.task("mine", OTHER_TASK)  # a task, no data yet
    at = app(run="mine")
    load_example(at)
    radio = at.radio(key=state.widget_key("task", "save_target.mine"))
    # issue 40: replacing is never preselected, even in a run without data ...
    assert radio.value == "Save as a new run"
    # ... the user picks it and confirms, naming the task that is lost
    radio.set_value("Save into run mine (replaces its task)").run()
    assert button(at, "Save task to run").disabled
    sure = at.checkbox(key=state.widget_key("task", "save_confirm.mine"))
    assert "replace task 'mine' in run mine" in sure.label
    sure.check().run()
    button(at, "Save task to run").click().run()
    assert json.loads((d / "task.json").read_text())["name"] == "sentiment"
    assert store.list_runs() == ["mine"]


# --------------------------------------------------------------------------- 5 · messages

def _edit_demos(at, **edit):
    key = state.widget_key("task", "demos", 1)
    at.session_state[key] = {"edited_rows": {}, "added_rows": [], "deleted_rows": [], **edit}
    at.run()
    assert not at.exception


def test_task_errors_count_demonstrations_from_one(app):
    at = app()
    load_example(at)
    _edit_demos(at, edited_rows={"0": {"output": "maybe"}})
    errors = " ".join(e.value for e in at.error)
    assert "Demonstration 1: the output 'maybe' is not one of the labels" in errors
    assert "examples[0]" not in errors and "demos[0]" not in errors
    assert "'labels'" not in errors  # the page names its own box: Labels


def test_task_page_hints_name_the_page_not_the_json_file(app):
    at = app()
    load_example(at)
    _edit_demos(at, deleted_rows=[0, 1, 2, 3])
    errors = " ".join(e.value for e in at.error)
    assert "at least 1 demonstration" in errors
    assert '"examples"' not in errors and "Demonstrations table" in errors


def test_a_cancelled_training_is_neutral_news(app, runs):
    d = runs.dataset("r1")
    write_status(d, "train", state="cancelled", ended=time.time(),
                 error="The train job was cancelled (signal 15).")
    at = app(run="r1")
    at.switch_page("studio/pages/finetune.py").run()
    assert not at.exception
    assert any(i.value == "Training was cancelled." for i in at.info)
    assert not any("signal 15" in e.value for e in at.error)


def test_no_change_has_no_arrow_and_a_plain_interval(app, runs):
    preds = [{"id": f"t{i}", "input": f"x{i}", "gold": "positive", "before": "positive",
              "after": "positive", "score_before": 1.0, "score_after": 1.0, "changed": False}
             for i in range(4)]
    d = runs.evaluated("r1", preds)
    m = json.loads((d / "eval" / "metrics.json").read_text())
    m["difference"] = {"delta": 0.0, "low": 0.0, "high": 0.0}
    store.atomic_write_json(d / "eval" / "metrics.json", m)
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception
    after = next(x for x in at.metric if x.label.startswith("After"))
    assert after.delta == "no change" and "+0.000" not in after.delta
    assert after.proto.color != after.proto.MetricColor.GREEN  # not green
    assert after.proto.direction == after.proto.MetricDirection.NONE  # and no arrow
    assert metric(at, "95% CI of after − before") == "no change"


# --------------------------------------------------------------------------- 6 · progress

def test_metric_follows_type_until_the_user_picks_one(app):
    at = app()
    load_example(at)  # classification, exact_match
    t_key, m_key = (state.widget_key("task", n, 1) for n in ("task_type", "metric"))
    at.selectbox(key=t_key).set_value("generation").run()
    assert at.selectbox(key=m_key).value == "rouge_l"
    at.selectbox(key=t_key).set_value("classification").run()
    assert at.selectbox(key=m_key).value == "exact_match"
    at.selectbox(key=m_key).set_value("rouge_l").run()  # the user's choice sticks
    at.selectbox(key=t_key).set_value("generation").run()
    at.selectbox(key=t_key).set_value("classification").run()
    assert at.selectbox(key=m_key).value == "rouge_l"


def test_method_caption_matches_the_chosen_method(app, runs):
    runs.dataset("r1")
    at = app(run="r1")
    at.switch_page("studio/pages/finetune.py").run()
    assert "QLoRA" in all_text(at)
    method = next(s for s in at.selectbox if s.label == "method")
    method.set_value("lora").run()
    text = all_text(at)
    assert "LoRA: the frozen base runs in bf16" in text
    assert "QLoRA" not in text and "4-bit" not in text


def test_a_running_job_on_a_preset_shows_that_preset(app, runs):
    d = runs.dataset("r1")
    write_status(d, "train", argv=["train", "--run", "r1"])  # quick = the defaults
    at = app(run="r1")
    at.switch_page("studio/pages/finetune.py").run()
    assert at.selectbox(key=state.widget_key("train", "preset")).value == "quick"


@pytest.mark.parametrize("native, says", [("1", "has native bf16, so QLoRA"),
                                          ("0", "has no native bf16, so LoRA on an fp32 base")])
def test_the_auto_method_caption_says_what_this_cpu_gets(monkeypatch, native, says):
    """Issue 33: the default method depends on the CPU; the caption says which it is here."""
    from studio.views.finetune import method_caption

    from selfguide.settings.training import TrainConfig

    monkeypatch.setenv("SELFGUIDE_CPU_BF16", native)
    assert says in method_caption(TrainConfig())
    assert says in method_caption(None)
