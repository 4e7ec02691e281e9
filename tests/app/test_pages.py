"""Per-page AppTest tests with preset session state and run directories written by the test.

Job launching is replaced by a recorder (nothing is spawned in-process) and model loading
by a scripted fake generator, so these tests check the pages' behaviour, not the models.
"""

from __future__ import annotations

import json
import time

import pytest
from sgtest.pages import all_text, button, metric, write_status  # noqa: F401

from selfguide.runs import store
from studio.app import state

XSS = "<img src=x onerror=alert(1)>"
JS_LINK = "[x](javascript:alert(1))"










# --------------------------------------------------------------------------- model

def test_model_page_loads_once_and_tries_a_prompt(app, monkeypatch):
    from selfguide.backends.fake import FakeGenerator
    from studio.app import resources
    loads = []

    def fake_build(cfg):
        loads.append(cfg.model)
        return resources.CachedModel(
            config={"model": cfg.model}, generator=FakeGenerator(script=f"hi {XSS}"),
            info={"ref": cfg.model, "n_params": 134_515_008, "memory_bytes": 270 * 2**20,
                  "device": "cpu", "precision": "bf16", "load_seconds": 1.5,
                  "has_chat_template": True,
                  "detected": {"family": "gemma2 (Gemma2ForCausalLM)",
                               "decode path": "fallback: sliding-window attention layers"}})

    monkeypatch.setattr(resources, "build_model", fake_build)
    monkeypatch.setenv("SELFGUIDE_CPU_BF16", "0")  # as on a CPU that only emulates bf16
    at = app()
    at.run()
    button(at, "Load model").click().run()
    assert not at.exception
    assert metric(at, "Parameters") == "134.5 M"
    assert any("no native bf16" in w.value and "fp32" in w.value for w in at.warning)
    assert metric(at, "Device") == "cpu"
    assert any("Detected:" in c.value and "gemma2" in c.value and "sliding-window" in c.value
               for c in at.caption)
    for _ in range(3):  # reruns reuse the cached model
        at.run()
    assert loads == ["embedded"]
    at.text_area(key=state.widget_key("model", "prompt")).set_value("Say hi").run()
    button(at, "Generate").click().run()
    assert [c.value for c in at.code] == [f"hi {XSS}"]
    assert XSS not in all_text(at)
    fresh = app()  # a browser refresh: a new session in the same studio process
    fresh.run()
    captions = [c.value for c in fresh.sidebar.caption]
    assert any("embedded · bf16 · cpu" in c for c in captions), captions
    assert not any("not loaded" in c for c in captions)
    assert loads == ["embedded"]


# --------------------------------------------------------------------------- task

def test_task_page_loads_example_and_saves_a_run(app, workspace):
    at = app()
    at.switch_page("studio/pages/task.py").run()
    at.selectbox(key=state.widget_key("task", "example")).set_value("sentiment.json").run()
    button(at, "Load example").click().run()
    assert not at.exception
    # Loading a task makes new widgets (version 1) so the browser drops the old values.
    instruction = at.text_area(key=state.widget_key("task", "instruction", 1))
    assert "positive or negative" in instruction.value
    assert any("Valid task" in s.value for s in at.success)
    button(at, "Save task to run").click().run()
    assert not at.exception
    runs = store.list_runs()
    assert runs == ["sentiment"]
    saved = json.loads((workspace / "runs" / "sentiment" / "task.json").read_text())
    assert saved["labels"] == ["positive", "negative"] and len(saved["demos"]) >= 3
    assert at.session_state[state.RUN_KEY] == "sentiment"
    assert at.query_params["run"] in ("sentiment", ["sentiment"])


def test_task_page_shows_validation_error_inline(app):
    at = app()
    at.switch_page("studio/pages/task.py").run()
    at.selectbox(key=state.widget_key("task", "example")).set_value("sentiment.json").run()
    button(at, "Load example").click().run()
    at.text_area(key=state.widget_key("task", "instruction", 1)).set_value("   ").run()
    assert not at.exception
    assert any("instruction" in e.value for e in at.error)
    assert button(at, "Save task to run").disabled


# --------------------------------------------------------------------------- synthesize

def test_synthesize_start_launches_the_cli_job(app, runs, job_recorder):
    d = runs.task("r1")
    at = app(run="r1")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    button(at, "Start").click().run()
    assert not at.exception
    assert len(job_recorder.calls) == 1
    run, stage, argv = job_recorder.calls[0]
    assert (run, stage) == ("r1", "synthesize")
    assert argv[:4] == ["synthesize", str(d / "task.json"), "--run", "r1"]
    opts = dict(zip(argv[4::2], argv[5::2]))
    # issue 15, item 1: the default preset is 'quick', as the README says (was 'tiny')
    assert opts["--rounds"] == "6" and opts["--n-samples"] == "5"  # the 'quick' preset
    # The argv is exactly what the CLI parses.
    from selfguide.cli import build_parser

    args = build_parser().parse_args(argv)
    assert args.rounds == "6" and args.run == "r1"


def test_synthesize_live_preview_and_refresh_reattach(app, runs):
    d = runs.task("r1")
    write_status(d, "synthesize")
    store.append_jsonl(d / "inputs.jsonl", [
        {"id": "r000-p000", "round": 0, "prompt_id": 0, "target_label": "positive",
         "input": "first input"},
        {"id": "r000-p001", "round": 0, "prompt_id": 1, "target_label": "negative",
         "input": XSS}])
    store.append_jsonl(d / "annotations.jsonl", [
        {"id": "r000-p000", "samples": ["positive", "positive", "negative"]}])
    store.append_jsonl(d / "jobs" / "synthesize" / "events.jsonl", [
        {"t": time.time(), "type": "progress", "stage": "inputs", "done": 1, "total": 4,
         "eta": 30, "tokens_per_s": 12.5, "elapsed": 10}])
    # A fresh session (browser refresh) that only knows ?run=r1.
    at = app()
    at.query_params["run"] = "r1"
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    assert "job state: `running`" in all_text(at)
    # issue 15, item 6: the bar is over the whole job (stage 1 of 2, a quarter done: 1/8)
    bar = at.get("progress")[0].proto
    assert bar.value == 12 and "stage 1 of 2" in bar.text and "inputs 1/4" in bar.text
    assert "12.5 tokens/s" in at.get("progress")[0].proto.text
    newest = at.dataframe[0].value
    assert newest["input"].tolist() == [XSS, "first input"]  # newest first, as text
    votes = at.dataframe[1].value
    assert votes["output"].tolist() == ["positive"] and votes["vote_share"].tolist() == [0.67]
    assert votes["input"].tolist() == ["first input"]  # issue 15, item 6: the text, not an id
    assert button(at, "Start").disabled
    assert XSS not in all_text(at)


def test_a_silent_worker_is_a_warning_the_panel_keeps_watching_with_cancel(app, runs):
    """Alive but its heartbeat late (a starved or stopped worker): not a dead end. The
    panel warns, keeps its Cancel button and keeps polling, so a worker that resumes
    reads as running again without a refresh."""
    d = runs.task("r1")
    write_status(d, "synthesize", heartbeat=time.time() - 600, heartbeat_interval=2.0)
    at = app()
    at.query_params["run"] = "r1"
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    assert "job state: `interrupted`" in all_text(at)
    warning = " ".join(str(w.value) for w in at.warning)
    assert "No heartbeat from the worker" in warning and "keeps watching" in warning
    assert not at.error  # not reported as a dead end
    assert not button(at, "Cancel").disabled
    write_status(d, "synthesize")  # the worker beats again
    at.run()
    assert "job state: `running`" in all_text(at) and not at.warning


# --------------------------------------------------------------------------- filter

def test_filter_sliders_change_counts_at_once(app, runs):
    runs.candidates("r1", n=40)
    at = app(run="r1")
    at.switch_page("studio/pages/filter.py").run()
    assert not at.exception
    assert metric(at, "Candidates") == "40"
    kept0 = int(metric(at, "Kept"))
    key = state.widget_key("filter.r1", "min_frequency")
    at.slider(key=key).set_value(0.9).run()
    kept_strict = int(metric(at, "Kept"))
    at.slider(key=key).set_value(0.0).run()
    kept_loose = int(metric(at, "Kept"))
    assert kept_strict < kept0 <= kept_loose
    assert not at.exception
    # Balance off keeps every label's rows; the per-label chart data follow.
    at.checkbox(key=state.widget_key("filter.r1", "balance")).set_value(False).run()
    assert int(metric(at, "Kept")) >= kept_loose


def test_filter_labels_tab_shows_agreement_with_the_asked_for_label(app, runs):
    runs.candidates("r1", n=40)  # the vote labels equal the asked-for labels; no scores
    at = app(run="r1")
    at.switch_page("studio/pages/filter.py").run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "strategy" in d.value.columns)
    got = dict(zip(table["strategy"], table["agrees with the asked-for label"]))
    assert got == {"vote": "100%", "rank": "–", "calibrated": "–"}
    chance = dict(zip(table["strategy"], table["by chance"]))
    assert chance["rank"] == chance["calibrated"] == "–"
    assert 50 <= int(chance["vote"].rstrip("%")) < 100  # labels with the same shares
    assert any("would agree by chance" in c.value for c in at.caption)


def test_filter_overrides_and_save_dataset(app, runs):
    d = runs.candidates("r1", n=40)
    at = app(run="r1")
    at.switch_page("studio/pages/filter.py").run()
    kept = int(metric(at, "Kept"))
    table = at.dataframe  # the editor is a data_editor (Arrow) element
    assert table, "candidates table missing"
    kept_id = next(r["id"] for r in at.dataframe[-1].value.to_dict("records")
                   if r["kept"])
    store.atomic_write_json(d / "overrides.json", {kept_id: False})
    at.run()
    assert int(metric(at, "Kept")) == kept - 1
    assert metric(at, "Manual overrides") == "1"
    button(at, "Save dataset").click().run()
    assert not at.exception, at.exception
    rows = store.read_jsonl(d / "dataset" / "train.jsonl")
    assert len(rows) == kept - 1 and kept_id not in {r["id"] for r in rows}
    assert any("Saved" in s.value for s in at.success)


# --------------------------------------------------------------------------- finetune

def test_finetune_refuses_degenerate_data(app, runs, job_recorder):
    runs.dataset("r1", rows=[{"id": f"c{i}", "prompt": f"p{i}", "completion": "positive",
                              "label": "positive"} for i in range(5)])
    at = app(run="r1")
    at.switch_page("studio/pages/finetune.py").run()
    assert not at.exception
    # the hint names the setting as the form shows it, not the CLI option
    assert any("identical" in e.value and "*force*" in e.value and "--force" not in e.value
               for e in at.error)
    assert button(at, "Launch training").disabled
    assert job_recorder.calls == []


def test_finetune_launch_and_live_loss(app, runs, job_recorder):
    d = runs.dataset("r1")
    at = app(run="r1")
    at.switch_page("studio/pages/finetune.py").run()
    assert not at.exception
    at.selectbox(key=state.widget_key("train", "preset")).set_value("tiny").run()
    button(at, "Launch training").click().run()
    assert job_recorder.calls and job_recorder.calls[0][1] == "train"
    argv = job_recorder.calls[0][2]
    assert argv[:3] == ["train", "--run", "r1"] and "--max-steps" in argv
    # The worker reports: progress and loss events drive the bar and the curve.
    write_status(d, "train")
    now = time.time()
    store.append_jsonl(d / "jobs" / "train" / "events.jsonl", [
        {"t": now, "type": "loss", "step": 1, "loss": 2.5, "tokens_per_s": 300.0},
        {"t": now, "type": "loss", "step": 2, "loss": 2.1, "tokens_per_s": 310.0},
        {"t": now, "type": "progress", "stage": "train", "done": 2, "total": 6, "eta": 8,
         "tokens_per_s": 310.0, "elapsed": 4}])
    at.run()
    assert not at.exception
    assert "job state: `running`" in all_text(at)
    assert at.get("vega_lite_chart"), "loss chart missing"
    assert "loss 2.1000" in all_text(at)
    assert button(at, "Cancel") is not None


# --------------------------------------------------------------------------- compare

def test_compare_shows_both_columns_and_renders_model_text_as_text(app, runs):
    preds = [
        {"id": "t0", "input": "Loved it.", "reference": "positive", "before": "negative",
         "after": "positive", "score_before": 0.0, "score_after": 1.0, "changed": True},
        {"id": "t1", "input": "Terrible.", "reference": "negative", "before": "negative",
         "after": XSS, "score_before": 1.0, "score_after": 0.0, "changed": True},
        {"id": "t2", "input": JS_LINK, "reference": "negative", "before": "negative",
         "after": "negative", "score_before": 1.0, "score_after": 1.0, "changed": False},
    ]
    runs.evaluated("r1", preds)
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception
    assert metric(at, "Before (exact_match)") == "0.667"
    assert metric(at, "After (exact_match)") == "0.667"
    frames = [d.value for d in at.dataframe]
    acc = next(f for f in frames if f.index.name == "label")
    assert acc.loc["positive", "before"] == 0.5 and acc.loc["positive", "after"] == 1.0
    ex = next(f for f in frames if "status" in f.columns)
    assert {"before", "after"} <= set(ex.columns)
    assert XSS in ex["after"].tolist() and JS_LINK in ex["input"].tolist()
    at.radio(key=state.widget_key("compare", "view")).set_value("regressed").run()
    frames = [d.value for d in at.dataframe]
    shown = next(f for f in frames if "status" in f.columns)
    assert shown["id"].tolist() == ["t1"]
    # The word diff of the regressed row: data in a table, the input as plain code text.
    diff = next(f for f in frames if "change" in f.columns)
    assert diff["change"].tolist() == ["replaced"]
    assert diff["before"].tolist() == ["negative"] and diff["after"].tolist() == [XSS]
    assert [c.value for c in at.code] == ["Terrible."]
    # Model text never reaches Markdown (where it could become markup or a link).
    assert XSS not in all_text(at) and "javascript:" not in all_text(at)


def test_compare_paper_metrics_and_gguf_export(app, runs, job_recorder):
    preds = [{"id": "t0", "input": "Loved it.", "reference": "positive", "before": "negative",
              "after": "positive", "score_before": 0.0, "score_after": 1.0, "changed": True}]
    d = runs.evaluated("r1", preds)
    m = store.read_json(d / "eval" / "metrics.json")
    block = {"before": 0.5, "after": 1.0, "difference": {"delta": 0.5, "low": 0.0, "high": 1.0}}
    store.atomic_write_json(d / "eval" / "metrics.json", {**m, "lenient_em": block,
                                                          "paper_rouge_l": block})
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception
    table = next(f.value for f in at.dataframe if "name" in f.value.columns)
    assert any("lenient EM" in n for n in table["name"]) and table["after"].tolist() == [1.0, 1.0]
    button(at, "Export GGUF").click().run()
    run, stage, argv = job_recorder.calls[0]
    assert (run, stage) == ("r1", "export-model")
    from selfguide.cli import build_parser

    args = build_parser().parse_args(argv)  # exactly what the CLI parses
    assert args.quant == "f16" and args.force and args.out.endswith("model-gguf")
    out = d / "export" / "model-gguf"
    out.mkdir(parents=True)
    (out / "r1-f16.gguf").write_bytes(b"GGUF" + bytes(100))
    (out / "Modelfile").write_text("FROM ./r1-f16.gguf\n")
    store.atomic_write_json(out / "export.json", {"file": "r1-f16.gguf", "verify": {
        "max_abs_diff": 0.001, "logit_std": 5.0, "top1_agreement": 1.0,
        "tokenizer_match": True}})
    at.run()
    assert not at.exception
    labels = [b.label for b in at.get("download_button")]
    assert any(lab.startswith("r1-f16.gguf") for lab in labels) and "Modelfile" in labels
    assert "tokenizer matches" in all_text(at)


def test_compare_warns_when_the_tuned_model_gives_one_answer(app, runs):
    preds = [{"id": f"t{i}", "input": f"Review {i}.", "reference": "positive",
              "before": "positive", "after": "negative", "score_before": 1.0,
              "score_after": 0.0, "changed": True} for i in range(3)]
    d = runs.evaluated("r1", preds)
    m = store.read_json(d / "eval" / "metrics.json")
    text = "The tuned model answers \u201cnegative\u201d to 3 of 3 held-out inputs."
    store.atomic_write_json(d / "eval" / "metrics.json", {**m, "warnings": [text]})
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception
    assert [w.value for w in at.warning] == [text]


def test_compare_without_adapter_points_to_finetune(app, runs):
    runs.dataset("r1")
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception
    assert any("no finetuned adapter" in i.value for i in at.info)


# --------------------------------------------------------------------------- runs

def test_runs_delete_needs_confirmation(app, runs, workspace):
    runs.task("keep-me")
    runs.task("bye")
    at = app(run="bye")
    at.switch_page("studio/pages/runs.py").run()
    assert not at.exception
    at.selectbox(key=state.widget_key("runs", "pick")).set_value("bye").run()
    button(at, "Delete…").click().run()
    assert button(at, "Delete for good").disabled
    at.text_input(key=state.widget_key("runs", "confirm")).set_value("bye").run()
    button(at, "Delete for good").click().run()
    assert not at.exception
    assert store.list_runs() == ["keep-me"]
    assert at.session_state[state.RUN_KEY] is None


@pytest.mark.parametrize("name", ["../../etc", "a/b", "..", "/etc/passwd", ""])
def test_runs_page_rejects_bad_run_names(app, workspace, name):
    at = app()
    at.switch_page("studio/pages/runs.py").run()
    at.text_input(key=state.widget_key("runs", "new_name")).set_value(name).run()
    button(at, "Create run").click().run()
    assert not at.exception
    assert any("Invalid run name" in e.value for e in at.error)
    assert store.list_runs() == []
    assert sorted(p.name for p in workspace.iterdir()) in ([], ["runs"])


def test_runs_page_creates_and_renames(app, workspace):
    at = app()
    at.switch_page("studio/pages/runs.py").run()
    at.text_input(key=state.widget_key("runs", "new_name")).set_value("fresh-1").run()
    button(at, "Create run").click().run()
    assert not at.exception
    assert store.list_runs() == ["fresh-1"]
    assert at.session_state[state.RUN_KEY] == "fresh-1"
    at.text_input(key=state.widget_key("runs", "new_name")).set_value("fresh-2").run()
    button(at, "Rename current run").click().run()
    assert store.list_runs() == ["fresh-2"]
    assert at.session_state[state.RUN_KEY] == "fresh-2"


def test_runs_open_goes_to_the_next_step(app, runs):
    runs.candidates("c1")
    runs.task("t1")
    at = app()
    at.switch_page("studio/pages/runs.py").run()
    at.selectbox(key=state.widget_key("runs", "pick")).set_value("c1").run()
    button(at, "Open").click().run()
    assert not at.exception
    assert at.title[0].value == "Filter"
    assert at.session_state[state.RUN_KEY] == "c1"


def test_model_page_shows_a_bad_path_as_an_error(app):
    at = app()
    at.run()
    at.radio(key=state.widget_key("model", "source")).set_value("local").run()
    at.text_input(key=state.widget_key("model", "ref")).set_value("/nonexistent/model").run()
    button(at, "Load model").click().run()
    assert not at.exception
    assert at.error and "/nonexistent/model" in at.error[0].value
    assert not at.metric  # nothing pretends to be loaded


def test_start_twice_shows_already_running(app, runs, monkeypatch):
    from selfguide import jobs
    from selfguide.errors import JobAlreadyRunning

    runs.task("r1")
    calls = []

    def busy(run, stage, argv, **kw):
        calls.append(stage)
        raise JobAlreadyRunning(f"A {stage} job for run {run!r} is already running.",
                                hint="Wait for it to finish.")

    monkeypatch.setattr(jobs, "start", busy)
    at = app(run="r1")
    at.switch_page("studio/pages/synthesize.py").run()
    button(at, "Start").click().run()
    assert not at.exception
    assert calls == ["synthesize"]
    assert any("already running" in e.value for e in at.error)
    # While a live worker owns the job, Start is disabled: a double click cannot start two.
    write_status(store.resolve_run_dir("r1"), "synthesize")
    at.run()
    assert button(at, "Start").disabled


def test_compare_free_form_runs_both_models(app, runs, monkeypatch):
    from selfguide.backends.fake import FakeGenerator
    from studio.app import resources
    runs.evaluated("r1", [{"id": "t0", "input": "a", "reference": "positive",
                           "before": "negative", "after": "positive", "score_before": 0.0,
                           "score_after": 1.0, "changed": True}])
    before, after = FakeGenerator(script="negative"), FakeGenerator(script=XSS)
    monkeypatch.setattr(resources, "build_tuned", lambda run_dir: resources.CachedPair(
        before=before, after=after, chat=True, adapter={}))
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    at.text_area(key=state.widget_key("compare", "free")).set_value("What a film!").run()
    button(at, "Run through both").click().run()
    assert not at.exception
    codes = [c.value for c in at.code]
    assert "negative" in codes and XSS in codes
    prompt = after.calls[0].prompts[0]
    assert "What a film!" in prompt and "positive or negative" in prompt  # the task's prompt
    assert before.calls[0].prompts == after.calls[0].prompts
    assert XSS not in all_text(at)


def test_filter_and_finetune_pages_explain_own_labels(app, workspace):
    """A run where nothing is trusted (demos right by luck, labels that do not follow the
    inputs): the Filter page says the labels are the model's own answers, balancing is
    greyed out with why, the Labels tab lists 'own'; the Finetune page refuses the one-label
    dataset by default, since the demos spread over both labels (issue 39: the tuned model
    would answer that label to everything), says why and names the override."""
    from sgtest.labelling import SMALL, LuckyDemos
    from sgtest.labelling import TASK as SENT

    from selfguide.methods.selfguide import pipeline as P
    from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig

    run_dir = workspace / "runs" / "own"
    synth = SynthesisConfig(**{**SMALL.__dict__, "rounds": 4})
    P.prepare_run(run_dir, SENT, synth, FilterConfig())
    report = P.synthesize(run_dir, SENT, synth, LuckyDemos("plain"), stream=None)
    assert report["labelling"]["strategy"] == "own"
    at = app(run="own")
    at.switch_page("studio/pages/filter.py").run()
    assert not at.exception, at.exception
    text = all_text(at)
    assert "the model's own answer" in text and "no balancing" in text
    assert any("model's own answer" in w.value for w in at.warning)
    assert not [e.value for e in at.error]
    balance = at.checkbox(key=state.widget_key("filter.own", "balance"))
    assert balance.disabled and "own answers" in balance.help
    table = next(d.value for d in at.dataframe if "strategy" in d.value.columns)
    assert "own" in set(table["strategy"])
    at.switch_page("studio/pages/finetune.py").run()
    assert not at.exception, at.exception
    refusal = " ".join(e.value for e in at.error)
    assert "identical" in refusal and "force" in refusal  # one label: one completion
    assert button(at, "Launch training").disabled
