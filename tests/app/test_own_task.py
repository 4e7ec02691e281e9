"""The studio for a user's own task (issue 40): before/after without a test set on the
Compare page (issues 39/40), held-out rows on the Task page, no destructive default, clean
downloads and the label caveat carried through."""

from __future__ import annotations

import json

from sgtest.pages import all_text, button, metric
from sgtest.tasks import TICKETS

from selfguide.runs import store
from studio.app import state


def _own_run(runs, name="tickets", *, dropped=12):
    """A trained run of a task without held-out rows; ``dropped`` candidates not kept."""
    import pandas as pd

    d = runs.task(name, TICKETS)
    recs = [{"id": f"k{i}", "input": f"kept ticket {i}", "output": "billing",
             "prompt": "p", "completion": "billing", "label": "billing"} for i in range(4)]
    store.atomic_write_text(d / "dataset" / "train.jsonl",
                            "".join(json.dumps(r) + "\n" for r in recs))
    rows = [{"id": r["id"], "input": r["input"], "kept": True} for r in recs]
    rows += [{"id": f"d{i}", "input": f"dropped ticket {i}", "kept": False}
             for i in range(dropped)]
    pd.DataFrame(rows).to_parquet(d / "candidates.parquet")
    (d / "train" / "adapter").mkdir(parents=True, exist_ok=True)
    return d


def _unlabeled_metrics(d, *, collapse=True):
    from selfguide.evaluation import unlabeled
    from selfguide.task.spec import TaskSpec

    task = TaskSpec.from_dict(TICKETS)
    before = ["billing", "technical", "other", "technical"] * 3
    after = ["billing"] * 12 if collapse else before
    summary = unlabeled.summarize(task, before, after)
    summary.update(source="held-out synthetic inputs never trained on: 12 not kept",
                   warnings=[])
    store.atomic_write_json(d / "eval" / "metrics.json", summary)
    examples = [{"id": f"d{i}", "input": f"dropped ticket {i}"} for i in range(12)]
    rows = unlabeled.rows(examples, before, after, before, after, task.labels)
    store.atomic_write_text(d / "eval" / "predictions.jsonl",
                            "".join(json.dumps(r) + "\n" for r in rows))


def test_compare_without_held_out_rows_offers_the_unlabeled_comparison(app, runs,
                                                                       job_recorder):
    _own_run(runs)
    at = app(run="tickets")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception, at.exception
    text = all_text(at)
    assert "no held-out rows with expected outputs" in text
    assert "12 inputs without labels" in text and "12 not kept" in text
    assert "No held-out examples" not in text
    # the free-form box is there before any evaluation
    assert any(h.value == "Try both models" for h in at.subheader)
    evaluate = button(at, "Evaluate before / after")
    assert not evaluate.disabled
    evaluate.click().run()
    run, stage, argv = job_recorder.calls[0]
    assert (run, stage) == ("tickets", "eval") and "--test" not in argv


def test_compare_with_nothing_to_compare_on_asks_for_rows_or_inputs(app, runs):
    _own_run(runs, dropped=0)
    at = app(run="tickets")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception, at.exception
    assert button(at, "Evaluate before / after").disabled
    assert any("Task page" in i.value and "inputs without labels" in i.value for i in at.info)
    assert "--" not in " ".join(i.value for i in at.info)  # no CLI flags on a page
    at.text_area(key=state.widget_key("compare", "own_inputs")).set_value(
        "My card was declined\n\nWhere is my invoice?\n").run()
    button(at, "Save inputs").click().run()
    assert not at.exception, at.exception
    assert not button(at, "Evaluate before / after").disabled
    assert "2 inputs without labels: your own inputs" in all_text(at)
    assert any(s.value.startswith("Saved 2 inputs") for s in at.success)


def test_compare_shows_collapse_shares_and_agreement(app, runs):
    d = _own_run(runs)
    _unlabeled_metrics(d)
    at = app(run="tickets")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception, at.exception
    (err,) = [e.value for e in at.error]
    assert err.startswith("Collapse: the tuned model answers \u201cbilling\u201d to 12 of 12")
    assert "use the base model" in err
    assert metric(at, "Agreement") == "25%" and metric(at, "Spread after") == "0.00 bits"
    shares = next(f.value for f in at.dataframe if "tuned_share" in f.value.columns)
    assert shares.set_index("answer").loc["billing", "tuned"] == 12
    answers = next(f.value for f in at.dataframe if "same" in f.value.columns)
    assert len(answers) == 12
    at.radio(key=state.widget_key("compare", "answers_view")).set_value("different").run()
    answers = next(f.value for f in at.dataframe if "same" in f.value.columns)
    assert len(answers) == 9 and not answers["same"].any()
    assert any(h.value == "Try both models" for h in at.subheader)
    assert "None" not in all_text(at)
    # no collapse: said plainly too
    _unlabeled_metrics(d, collapse=False)
    at.run()
    assert not at.error and any(s.value.startswith("No collapse") for s in at.success)


def test_compare_recalls_the_label_caveat_beside_the_gain(app, runs):
    preds = [{"id": "t0", "input": "Loved it.", "reference": "positive", "before": "negative",
              "after": "positive", "score_before": 0.0, "score_after": 1.0, "changed": True}]
    d = runs.evaluated("r1", preds)
    store.atomic_write_json(d / "dataset" / "report.json", {
        "candidates": 20, "kept": 12, "labelling": {"strategy": "own",
                                                   "beats_chance": False}})
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception, at.exception
    assert any("Caveat from the Filter page" in w.value and "not the task" in w.value
               for w in at.warning)


# --------------------------------------------------------------------------- Task page

def _task_page(at):
    at.switch_page("studio/pages/task.py").run()
    assert not at.exception, at.exception
    return at


def _draft(task: dict) -> dict:
    from selfguide.task.spec import TaskSpec
    return TaskSpec.from_dict(task).to_dict()


def test_task_page_takes_held_out_rows_apart_from_the_demos(app, workspace):
    at = _task_page(app(**{state._TASK_DRAFT: _draft(TICKETS)}))
    key = state.widget_key("task", "test", 0)
    at.session_state[key] = {"edited_rows": {}, "deleted_rows": [], "added_rows": [
        {"input": "Refund my last invoice please", "output": "billing"},
        {"input": "Error 500 on the dashboard", "output": "technical"}]}
    at.run()
    assert not at.exception, at.exception
    assert any("Valid task: 3 demonstrations" in s.value for s in at.success)
    button(at, "Save task to run").click().run()
    assert not at.exception, at.exception
    saved = json.loads((workspace / "runs" / "tickets" / "task.json").read_text())
    assert [t["input"] for t in saved["test"]] == ["Refund my last invoice please",
                                                  "Error 500 on the dashboard"]
    assert [t["outputs"] for t in saved["test"]] == [["billing"], ["technical"]]
    assert len(saved["demos"]) == 3  # the demos are untouched
    assert "Refund my last invoice please" not in json.dumps(saved["demos"])
    # a held-out label outside the label set is an error on the page, not a traceback
    at.session_state[state.widget_key("task", "test", 0)] = {
        "edited_rows": {}, "deleted_rows": [],
        "added_rows": [{"input": "Refund my last invoice please", "output": "refunds"}]}
    at.run()
    assert not at.exception and any("refunds" in e.value for e in at.error)


def test_held_out_rows_of_a_file_show_in_the_grid_and_overlap_is_flagged(app):
    at = _task_page(app())
    button(at, "Load example").click().run()
    assert "**Held-out rows** (optional)" in all_text(at)
    demos = at.session_state[state._TASK_DRAFT]["demos"]
    assert len(at.session_state[state._TASK_DRAFT]["test"]) >= 20  # the example's rows
    at.session_state[state.widget_key("task", "test", 1)] = {
        "edited_rows": {}, "deleted_rows": [],
        "added_rows": [{"input": demos[0]["input"], "output": demos[0]["output"]}]}
    at.run()
    assert any("repeats a demonstration's input" in w.value for w in at.warning)


def test_held_out_rows_import_reads_csv_and_jsonl():
    from studio.views import task_rows

    rows = task_rows.read_rows(b"input,output\nMy bill is wrong,billing\n", "rows.csv")
    assert rows == [{"input": "My bill is wrong", "outputs": ["billing"], "id": ""}]
    rows = task_rows.read_rows(b'{"input": "Crash", "output": "technical"}\n', "r.jsonl")
    assert rows[0]["outputs"] == ["technical"]


def test_load_example_never_silently_replaces_an_unsaved_own_task(app):
    at = _task_page(app(**{state._TASK_DRAFT: _draft(TICKETS)}))
    button(at, "Load example").click().run()
    assert not at.exception, at.exception
    assert at.session_state[state._TASK_DRAFT]["name"] == "tickets"  # nothing replaced yet
    (warning,) = [w.value for w in at.warning if "would be lost" in w.value]
    assert "**sentiment** replaces the task in the editor, **tickets** (3 demonstrations)" \
        in warning
    button(at, "Keep my task").click().run()
    assert at.session_state[state._TASK_DRAFT]["name"] == "tickets"
    assert not [w for w in at.warning if "would be lost" in w.value]
    button(at, "Load example").click().run()
    button(at, "Replace it with sentiment").click().run()
    assert not at.exception, at.exception
    assert at.session_state[state._TASK_DRAFT]["name"] == "sentiment"


def test_load_example_over_a_saved_own_task_defaults_to_a_new_run(app, runs, workspace):
    d = runs.task("tickets", TICKETS)
    before = (d / "task.json").read_text()
    at = _task_page(app(run="tickets"))
    button(at, "Load example").click().run()  # the editor held the saved task: no question
    assert at.session_state[state._TASK_DRAFT]["name"] == "sentiment"
    radio = at.radio(key=state.widget_key("task", "save_target.tickets"))
    assert radio.value == "Save as a new run"
    button(at, "Save task to run").click().run()
    assert (d / "task.json").read_text() == before
    assert sorted(store.list_runs()) == ["sentiment", "tickets"]


# --------------------------------------------------------------------------- no destructive default

def test_synthesize_start_is_disabled_with_the_reason_for_another_methods_run(app, runs):
    runs.candidates("r1")  # a SELF-GUIDE run with its candidates
    at = app(run="r1")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception, at.exception
    assert not button(at, "Start").disabled
    assert any("candidates" in s.value for s in at.success)  # its own data's count
    at.radio(key=state.widget_key("synth", "method")).set_value("selfinstruct").run()
    assert not at.exception, at.exception
    assert button(at, "Start").disabled
    (why,) = [w.value for w in at.warning if "would overwrite" in w.value]
    assert "holds data made by SELF-GUIDE" in why and "new run" in why
    assert not any("candidates" in s.value for s in at.success)  # no other method's count
    name = at.text_input(key=state.widget_key("synth", "new_run.r1"))
    name.set_value("r1-instruct").run()
    button(at, "Create the run and switch to it").click().run()
    assert not at.exception, at.exception
    assert at.session_state[state.RUN_KEY] == "r1-instruct"
    assert sorted(store.list_runs()) == ["r1", "r1-instruct"]
    assert json.loads((store.resolve_run_dir("r1-instruct") / "task.json").read_text())[
        "name"] == "sentiment"


def test_synthesize_start_is_disabled_while_training_runs(app, runs):
    from sgtest.pages import write_status

    d = runs.dataset("r1")
    write_status(d, "train")
    at = app(run="r1")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception, at.exception
    assert button(at, "Start").disabled
    assert any("training job of this run is running" in w.value for w in at.warning)


def test_filter_page_is_read_only_while_training_runs(app, runs):
    from sgtest.pages import write_status

    d = runs.dataset("r1")
    write_status(d, "train")
    at = app(run="r1")
    at.switch_page("studio/pages/filter.py").run()
    assert not at.exception, at.exception
    assert any("read-only" in i.value for i in at.info)
    assert not [b for b in at.button if b.label == "Save dataset"]
    assert not at.slider and not at.checkbox
    assert metric(at, "Training rows") == "12"
    # once the training ends, the page is editable again
    write_status(d, "train", state="finished")
    at.run()
    assert not at.exception, at.exception
    assert [b for b in at.button if b.label == "Save dataset"]


# --------------------------------------------------------------------------- clean data

def test_candidates_csv_reads_back_with_numeric_columns_and_plain_lists(runs):
    import io

    import numpy as np
    import pandas as pd

    from selfguide.methods import candidates

    d = runs.candidates("r1", n=6)
    df = candidates.read(d)
    df["label_scores"] = [[np.float64(-2.38), np.float64(-0.4)]] * len(df)
    df["vote_share"] = df["vote_share"].astype("float64")
    df.loc[0, "label"] = None  # a dropped row without a label
    text = candidates.to_csv_bytes(df).decode("utf-8")
    assert "np.float64" not in text and "None" not in text and "array(" not in text
    back = pd.read_csv(io.StringIO(text))
    assert pd.api.types.is_float_dtype(back["vote_share"])
    assert pd.api.types.is_integer_dtype(back["round"])
    assert json.loads(back.loc[0, "label_scores"]) == [-2.38, -0.4]
    assert isinstance(json.loads(back.loc[1, "samples"]), list)
    assert pd.isna(back.loc[0, "label"]) and back.loc[1, "label"] in ("positive", "negative")


# --------------------------------------------------------------------------- trust carried through

def test_finetune_repeats_the_caveat_shows_the_split_and_the_cli_before_launch(app, runs,
                                                                            job_recorder):
    from selfguide.cli import build_parser

    d = runs.dataset("r1")  # 12 rows
    store.atomic_write_json(d / "dataset" / "report.json", {
        "candidates": 40, "kept": 12, "train": 12, "val": 0,
        "labelling": {"strategy": "own", "beats_chance": False}})
    at = app(run="r1")
    at.switch_page("studio/pages/finetune.py").run()
    assert not at.exception, at.exception
    assert any("Caveat from the Filter page" in w.value for w in at.warning)
    at.selectbox(key=state.widget_key("train", "preset")).set_value("quick").run()
    text = all_text(at)
    # the quick preset's 10% of 12 rows is under min_val_rows: said, not hidden
    assert "Validation: none (fewer than 8 rows could be held back); all 12 rows train." \
        in text
    (cmd,) = [c.value for c in at.code if c.value.startswith("selfguide train")]
    button(at, "Launch training").click().run()
    argv = job_recorder.calls[0][2]
    assert cmd == "selfguide " + " ".join(argv)  # exactly what Launch runs
    assert build_parser().parse_args(argv).run == "r1"


def test_validation_split_is_decided_in_one_place():
    from selfguide.settings.training import TrainConfig
    from selfguide.training.trainer import validation_split
    from studio.views import finetune

    rows = [{"id": str(i)} for i in range(100)]
    cfg = TrainConfig(val_fraction=0.1)
    train, val, why = validation_split(rows, [], cfg)
    assert (len(train), len(val)) == (90, 10) and "10% of the rows held back" in why
    assert finetune.split_line(rows, [], cfg).startswith("Validation: 10 of 100 rows held back")
    train, val, why = validation_split(rows, [{"id": "v"}], cfg)
    assert (len(train), len(val), why) == (100, 1, "the dataset's validation file")
    assert validation_split(rows, [], TrainConfig(val_fraction=0.0))[2].startswith(
        "validation is off")


def test_training_view_figures_and_the_kept_checkpoint(app, runs):
    from sgtest.pages import write_status

    d = runs.dataset("r1")
    write_status(d, "train")
    store.append_jsonl(d / "jobs" / "train" / "events.jsonl", [
        {"type": "train_begin", "step": 0, "max_steps": 12},
        {"type": "loss", "step": 4, "epoch": 1.0, "loss": 2.5, "lr": 2e-4},
        {"type": "eval", "step": 4, "epoch": 1.0, "eval_loss": 2.4},
        {"type": "loss", "step": 8, "epoch": 2.0, "loss": 2.0, "lr": 1e-4},
        {"type": "eval", "step": 8, "epoch": 2.0, "eval_loss": 2.2}])
    at = app(run="r1")
    at.switch_page("studio/pages/finetune.py").run()
    assert not at.exception, at.exception
    assert metric(at, "Epoch") == "2.00" and metric(at, "Step") == "8 of 12"
    assert metric(at, "Learning rate") == "1.00e-04"
    assert metric(at, "Train loss") == "2.0000" and metric(at, "Validation loss") == "2.2000"
    write_status(d, "train", state="finished")
    store.atomic_write_json(d / "train" / "metrics.json", {
        "steps": 12, "train_loss": 1.9, "wall_s": 30, "tokens_per_s": 300, "rows": 11,
        "val_rows": 1, "best_checkpoint": "checkpoint-8",
        "eval_losses": [{"epoch": 1.0, "eval_loss": 2.4}, {"epoch": 2.0, "eval_loss": 2.2},
                        {"epoch": 3.0, "eval_loss": 2.3}]})
    at.run()
    assert not at.exception, at.exception
    assert ("Kept checkpoint-8: the lowest validation loss (2.2000, epoch 2 of 3 validated)"
            in all_text(at))


def test_model_card_shows_the_split_training_used():
    from selfguide.export import cards

    line = cards._rows_line({"candidates": 108, "kept": 88, "train": 88, "val": 0},
                            {"rows": 79, "val_rows": 9})
    assert line == ("108 candidates generated, 88 kept by the filters; training used 79 of "
                    "them and held back 9 to validate.")


def test_adding_held_out_rows_to_the_runs_own_task_saves_into_it(app, runs):
    d = _own_run(runs)
    at = _task_page(app(run="tickets"))
    at.session_state[state.widget_key("task", "test", 0)] = {
        "edited_rows": {}, "deleted_rows": [],
        "added_rows": [{"input": f"ticket {i}", "output": lab} for i, lab in
                       enumerate(["billing", "technical", "other", "billing", "other"])]}
    at.run()
    assert not at.exception, at.exception
    assert "saving updates them there" in all_text(at)
    assert not at.radio  # nothing is replaced: no choice to make
    button(at, "Save task to run").click().run()
    saved = json.loads((d / "task.json").read_text())
    assert len(saved["test"]) == 5 and saved["instruction"] == TICKETS["instruction"]
    assert "This task is the one saved in the current run" in all_text(at)
    assert store.list_runs() == ["tickets"]
    # Compare now scores the held-out rows
    at.switch_page("studio/pages/compare.py").run()
    assert "Evaluates on 5 held-out rows with expected outputs" in all_text(at)


def test_word_diff_row_numbers_are_the_tables_in_every_view(app, runs):
    preds = [{"id": f"t{i}", "input": f"Review {i}.", "reference": "positive",
              "before": "positive", "after": "positive" if i != 2 else "negative",
              "score_before": 1.0, "score_after": 1.0 if i != 2 else 0.0,
              "changed": i == 2} for i in range(4)]
    runs.evaluated("r1", preds)
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception, at.exception
    ex = next(f.value for f in at.dataframe if "status" in f.value.columns)
    assert list(ex.index) == [1, 2, 3, 4]  # counted from 1
    at.radio(key=state.widget_key("compare", "view")).set_value("regressed").run()
    assert not at.exception, at.exception
    ex = next(f.value for f in at.dataframe if "status" in f.value.columns)
    assert list(ex.index) == [3]  # the number it has in the full view
    pick = at.selectbox(key=state.widget_key("compare", "row.regressed"))
    assert pick.options == ["3"] and pick.value == 3
    assert [c.value for c in at.code] == ["Review 2."]


def test_changing_the_task_type_gives_the_metric_no_second_default(app, monkeypatch):
    from streamlit.elements.lib import policies

    seen = []
    real = policies.check_session_state_rules

    def spy(default_value, key, writes_allowed=True):
        if key and "metric" in key:
            seen.append(default_value)
        return real(default_value, key, writes_allowed)

    monkeypatch.setattr(policies, "check_session_state_rules", spy)
    gen = {**TICKETS, "task_type": "generation", "labels": [], "metric": "rouge_l"}
    at = _task_page(app(**{state._TASK_DRAFT: _draft(gen)}))
    at.selectbox(key=state.widget_key("task", "task_type", 0)).set_value(
        "classification").run()
    assert not at.exception, at.exception
    assert at.selectbox(key=state.widget_key("task", "metric", 0)).value == "exact_match"
    assert seen and seen[-1] is None  # the Session State value alone: no warning


def test_dropped_rows_never_show_a_raw_none_label(app, runs):
    import pandas as pd
    from sgtest.pages import all_text

    from selfguide.methods import candidates

    d = runs.candidates("r1", n=12)
    df = pd.read_parquet(d / "candidates.parquet")
    df.loc[:3, ["label", "output", "label_vote"]] = None  # no answer agreed: dropped
    df.to_parquet(d / "candidates.parquet")
    at = app(run="r1")
    at.switch_page("studio/pages/filter.py").run()
    assert not at.exception, at.exception
    frames = [f.value for f in at.dataframe]
    assert any("drop_reason" in f.columns for f in frames)  # the candidates table is here
    for frame in frames:
        cells = frame.astype(str).to_numpy().ravel().tolist()
        assert "None" not in cells and "nan" not in cells, frame.head()
    assert "None" not in all_text(at)
    text = candidates.to_csv_bytes(candidates.read(d)).decode()
    assert ",None," not in text and "None\n" not in text


def test_runs_list_headline_says_no_labels_and_collapse():
    from studio.views.runs import headline_metric

    assert headline_metric({"mode": "unlabeled", "agreement": 0.25, "before": None,
                            "after": None, "collapse": {"label": "billing"}}) == \
        "no labels: 25% agree · collapse to \u201cbilling\u201d"
    assert headline_metric({"metric": "exact_match", "before": 0.5, "after": 0.7,
                            "collapse": None}) == "exact_match: 0.500 → 0.700"


def test_filter_save_message_names_the_one_validation_split():
    from studio.views.filter import saved_message

    assert saved_message({"kept": 88, "train": 88, "val": 0}) == (
        "Saved 88 rows. Training holds back its validation rows from these (its validation "
        "fraction, shown on the Finetune page before Launch).")
    assert saved_message({"train": 80, "val": 8}).startswith(
        "Saved 80 training rows and 8 validation rows")
