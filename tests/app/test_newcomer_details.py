"""Issue 15 (the studio as a newcomer meets it), helper G's items: Synthesize defaults and
progress, Self-Instruct guidance, controls that do nothing, offline chrome, row repair.
Each test fails on the code before the fix."""

from __future__ import annotations

import json
import time
from pathlib import Path

import tomllib
from sgtest.pages import all_text, button, metric, write_status

from selfguide.runs import store
from studio.app import state

REPO_CONFIG = __import__("pathlib").Path(__file__).resolve().parents[2] / ".streamlit"


def _si_run(ws):
    from sgtest.selfinstruct_runs import make_si_run

    return make_si_run(ws)


# --------------------------------------------------------------------------- item 4

def _target_run(runs, name="r1"):
    """A classification run filtered with the 'target' strategy; row c001 is labelled
    positive (its target) although 98% of its votes are negative."""
    d = runs.candidates(name, n=40)
    import pandas as pd

    df = pd.read_parquet(d / "candidates.parquet")
    i = df.index[df["id"] == "c001"][0]
    df.loc[i, "votes"] = json.dumps({"negative": 49, "positive": 1})
    df.loc[i, "vote_share"] = 0.98
    df.to_parquet(d / "candidates.parquet")
    cfg = store.read_json(d / "config.json")
    store.atomic_write_json(d / "config.json", {**cfg, "filters": {"label_strategy": "target"}})
    return d


def test_controls_that_do_nothing_are_disabled_and_the_caption_follows(app, runs):
    _target_run(runs)
    at = app(run="r1")
    at.switch_page("studio/pages/filter.py").run()
    assert not at.exception, at.exception
    slider = at.slider(key=state.widget_key("filter.r1", "min_frequency"))
    assert slider.disabled and "Does nothing now" in slider.help
    assert "label strategy 'target'" in slider.help
    margin = at.slider(key=state.widget_key("filter.r1", "calibration_margin"))
    assert margin.disabled
    text = all_text(at)
    assert "The vote share decides nothing now" in text
    assert "answers with a lower share are dropped" not in text
    # rows read the share of the votes for the label actually used
    rows = at.dataframe[-1].value.set_index("id")
    assert rows.loc["c001", "label"] == "positive"
    assert rows.loc["c001", "label_share"] == 0.02 and rows.loc["c001", "vote_share"] == 0.98


def test_vote_strategy_keeps_the_threshold_live_with_its_rule(app, runs):
    runs.candidates("r1", n=40)
    at = app(run="r1")
    at.switch_page("studio/pages/filter.py").run()
    slider = at.slider(key=state.widget_key("filter.r1", "min_frequency"))
    assert not slider.disabled
    assert "(the dashed line)" in all_text(at)


# --------------------------------------------------------------------------- item 6

def test_progress_before_the_first_report_and_over_the_whole_job():
    from studio.app import jobs as sjobs
    now = time.time()
    stat = {"state": "running", "started": now - 75}
    view = sjobs.progress_view(stat, [], "synthesize")
    assert "waiting" not in view["text"] and "loading the model" in view["text"]
    assert "elapsed 1:15" in view["text"]
    evs = [{"t": now - 60, "type": "stage", "stage": "inputs", "state": "start"},
           {"t": now - 50, "type": "progress", "stage": "inputs", "done": 4, "total": 4},
           {"t": now - 10, "type": "stage", "stage": "annotate", "state": "start"},
           {"t": now - 5, "type": "log", "message": "labelling evidence: 4 demos"}]
    view = sjobs.progress_view(stat, evs, "synthesize")  # not the finished stage 1's 4/4
    assert "stage 2 of 2: answering the inputs" in view["text"] and view["fraction"] == 0.5
    assert "labelling evidence" in view["text"]
    evs.append({"t": now, "type": "progress", "stage": "annotate", "done": 5, "total": 10,
                "eta": 20, "elapsed": 10})
    view = sjobs.progress_view(stat, evs, "synthesize")
    assert view["fraction"] == 0.75 and "stage 2 of 2" in view["text"]
    assert "elapsed 1:15" in view["text"]  # the job's clock, not the stage's
    done = sjobs.done_text({"state": "finished", "started": now - 90, "ended": now}, evs)
    assert done == "finished · took 1:30"


def test_synthesize_counts_say_what_each_counts(app, runs):
    d = runs.candidates("r1", n=40)
    store.append_jsonl(d / "annotations.jsonl",
                       [{"id": f"c{i:03d}", "samples": ["positive"]} for i in range(30)])
    store.atomic_write_json(d / "dataset" / "report.json", {"train": 12, "kept": 14})
    at = app(run="r1")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    msg = " ".join(s.value for s in at.success)
    assert "40 candidates are ready to filter" in msg
    assert "30 passed the input filters and were answered" in msg
    assert "12 of them pass the filters and are the training examples" in msg


# --------------------------------------------------------------------------- item 7

def test_selfinstruct_presets_estimate_and_subtitle(app, runs, job_recorder):
    runs.task("r1")
    at = app(run="r1")
    at.switch_page("studio/pages/synthesize.py").run()
    assert "demonstrations" in at.caption[0].value
    at.radio(key=state.widget_key("synth", "method")).set_value("selfinstruct").run()
    assert not at.exception
    assert "Self-Instruct" in at.caption[0].value and "seed tasks" in at.caption[0].value
    preset = at.selectbox(key=state.widget_key("synth.si", "preset"))
    assert preset.value == "quick"
    assert "Rough time before Start" in all_text(at)
    button(at, "Start").click().run()
    run, stage, argv = job_recorder.calls[0]
    opts = dict(zip(argv[3::2], argv[4::2]))
    assert stage == "self-instruct" and opts["--num-instructions"] == "12"


def test_selfinstruct_cli_preset(workspace, monkeypatch):
    from sgtest.selfinstruct import fake_script

    from selfguide import backends, cli
    from selfguide.backends.fake import FakeGenerator
    from selfguide.runs.rundir import RunDir

    monkeypatch.setattr(backends, "get_generator",
                        lambda name, **kw: FakeGenerator(script=fake_script))
    assert cli.main(["self-instruct", "--run", "si", "--preset", "quick",
                     "--num-instructions", "3"]) == 0
    syn = RunDir.named("si").read_config()["synthesis"]
    assert syn["prompts_per_round"] == 4 and syn["num_instructions"] == 3


def test_finished_selfinstruct_job_says_finished_and_shows_its_warning(app, workspace):
    d = _si_run(workspace)
    rep = store.read_json(d / "dataset" / "report.json")
    rep["warning"] = "Stopped after max_rounds=2 with 3 of 4 instructions."
    store.atomic_write_json(d / "dataset" / "report.json", rep)
    jdir = write_status(d, "self-instruct", state="finished", ended=time.time())
    store.append_jsonl(jdir / "events.jsonl", [
        {"t": time.time(), "type": "progress", "stage": "self-instruct", "done": 3,
         "total": 4, "eta": 80}])
    at = app(run="si")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    # a Self-Instruct run opens with its own method, subtitle and settings
    assert at.radio(key=state.widget_key("synth", "method")).value == "selfinstruct"
    assert "Self-Instruct" in at.caption[0].value
    bar = at.get("progress")[0].proto.text
    assert bar.startswith("finished") and "ETA" not in bar
    assert any("Stopped after max_rounds=2" in w.value for w in at.warning)
    msg = " ".join(s.value for s in at.success)
    assert f"{rep['train']} of them pass the filters and are the training examples" in msg


# --------------------------------------------------------------------------- item 8

def test_offline_chrome_local_favicon_and_no_deploy_button(app, monkeypatch):
    import streamlit as st

    cfg = tomllib.loads((REPO_CONFIG / "config.toml").read_text())
    assert cfg["client"]["toolbarMode"] == "minimal"  # no "Deploy" button
    seen = {}
    real = st.set_page_config
    monkeypatch.setattr(st, "set_page_config",
                        lambda **kw: (seen.update(kw), real(**kw))[1])
    at = app()
    at.run()
    assert not at.exception
    icon = str(seen["page_icon"])
    assert icon.endswith(".png") and __import__("os").path.isfile(icon)


def test_one_point_loss_chart_has_whole_steps_and_rounded_loss():
    import pandas as pd

    from studio.app import charts
    spec = charts.loss(pd.DataFrame([{"step": 1, "loss": 1.192291, "kind": "train"}])) \
        .to_dict()
    enc = spec["encoding"]
    assert enc["x"]["axis"]["format"] == "d" and enc["x"]["axis"]["tickMinStep"] == 1
    assert enc["y"]["axis"]["format"] == ".3~f"


# --------------------------------------------------------------------------- row repair

def _option(at, rid):
    ms = at.multiselect(key=state.widget_key("filter.r1", "bulk.0"))
    return ms, next(o for o in ms.options if o.startswith(f"{rid} · "))


def test_row_repair_round_trip_through_the_page_and_the_cli(app, runs):
    from selfguide import cli
    from selfguide.runs.rundir import RunDir

    d = runs.candidates("r1", n=40)
    at = app(run="r1")
    at.switch_page("studio/pages/filter.py").run()
    rows = at.dataframe[-1].value
    kept = rows[rows["kept"]]
    a, b = kept["id"].iloc[0], kept["id"].iloc[1]
    dropped = rows[~rows["kept"]]["id"].iloc[0]
    new = "negative" if kept["label"].iloc[0] == "positive" else "positive"
    ms, opt_a = _option(at, a)
    ms.set_value([opt_a, _option(at, dropped)[1]]).run()
    at.selectbox(key=state.widget_key("filter.r1", "bulk_label")).set_value(new).run()
    button(at, "Set label of 2 rows").click().run()
    assert not at.exception, at.exception
    fixes = RunDir(d).read_repairs()
    assert fixes[a]["label"] == new and fixes[a]["by"].startswith("studio")
    assert fixes[a]["original"]["label"] == kept["label"].iloc[0] and fixes[a]["at"]
    assert RunDir(d).read_overrides()[dropped] is True  # a corrected row is kept
    rows = at.dataframe[-1].value.set_index("id")
    assert rows.loc[a, "edited"] and rows.loc[a, "label"] == new and not rows.loc[b, "edited"]
    # survives re-filtering
    at.slider(key=state.widget_key("filter.r1", "min_frequency")).set_value(0.0).run()
    assert at.dataframe[-1].value.set_index("id").loc[a, "label"] == new
    assert metric(at, "Manual overrides") == "2"  # both corrected rows are kept
    button(at, "Save dataset").click().run()
    train = {r["id"]: r for r in store.read_jsonl(d / "dataset" / "train.jsonl")
             + store.read_jsonl(d / "dataset" / "val.jsonl")}
    assert train[dropped]["completion"] == new
    # the raw candidates never change; the CLI honours the repair too
    import pandas as pd

    assert pd.read_parquet(d / "candidates.parquet").set_index("id").loc[a, "label"] \
        != new or kept["label"].iloc[0] == new
    (d / "dataset" / "train.jsonl").unlink()
    assert cli.main(["filter", "--run", "r1"]) == 0
    assert cli.main(["export", "--run", "r1", "--format", "alpaca"]) == 0
    recs = store.read_jsonl(d / "dataset" / "train.jsonl") + \
        store.read_jsonl(d / "dataset" / "val.jsonl")
    assert {r["id"]: r["completion"] for r in recs}[dropped] == new
    from selfguide.runs import dataset
    exported = json.loads(dataset.export(d, "alpaca").read_text())  # only kept rows, edited
    assert len(exported) == len(store.read_jsonl(d / "dataset" / "train.jsonl"))
    assert new in {r["output"] for r in exported}
    # undo: back to the generated values
    at.run()
    ms, opt = _option_v(at, dropped)
    ms.set_value([opt]).run()
    button(at, "Undo their corrections").click().run()
    assert dropped not in RunDir(d).read_repairs()


def _option_v(at, rid):
    ms = next(m for m in at.multiselect if m.label == "Rows")
    return ms, next(o for o in ms.options if o.startswith(f"{rid} · "))


def test_table_changes_and_decorate():
    import pandas as pd

    from studio.views import filter_repairs as repairs
    view = pd.DataFrame({"id": ["a", "b"], "output": ["x", "y"], "label": ["p", "n"]})
    edited = view.copy()
    edited.loc[1, "output"] = "better"
    assert repairs.table_changes(view, edited) == {"b": {"output": "better"}}
    shown = repairs.decorate(view, {"a": {"label": "n", "original": {"label": "p"}}})
    assert shown["edited"].tolist() == [True, False] and shown["label"].tolist() == ["n", "n"]


def test_vote_share_chart_stacks_kept_and_dropped_with_the_threshold_rule():
    """Overlaid half-transparent bars mixed kept and dropped into one colour; the threshold
    in effect is drawn as a rule (none when it decides nothing)."""

    import importlib.util

    from studio.app import charts
    # tests/app/conftest.py by path: in a whole-suite run "conftest" may name another folder's
    spec = importlib.util.spec_from_file_location("app_conftest", Path(__file__).with_name(
        "conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    candidates_frame = mod.candidates_frame

    df = candidates_frame(20).assign(kept=[i % 2 == 0 for i in range(20)])
    spec = charts.vote_shares(df, 0.4).to_dict()
    bars, rule = spec["layer"]
    assert bars["encoding"]["y"]["stack"] == "zero" and rule["mark"]["type"] == "rule"
    assert "layer" not in charts.vote_shares(df).to_dict()


def test_finetune_page_draws_the_loss_with_whole_steps(app, runs):
    d = runs.dataset("r1")
    write_status(d, "train")
    store.append_jsonl(d / "jobs" / "train" / "events.jsonl", [
        {"t": time.time(), "type": "loss", "step": 1, "loss": 1.192291}])
    at = app(run="r1")
    at.switch_page("studio/pages/finetune.py").run()
    assert not at.exception
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert spec["encoding"]["x"]["axis"]["format"] == "d"
    assert spec["encoding"]["y"]["axis"]["format"] == ".3~f"
