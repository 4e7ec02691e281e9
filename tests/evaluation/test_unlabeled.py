"""Before/after without labels (issues 39 and 40): the inputs a run has without gold
labels, label shares, entropy, agreement and the collapse verdict in metrics.json, the CLI
(``eval`` and ``run``) and the card."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest
from sgtest.training import make_run

from selfguide import cli
from selfguide.backends.fake import FakeGenerator
from selfguide.errors import DatasetError
from selfguide.evaluation import compare, unlabeled
from selfguide.evaluation import predict as evaluation
from selfguide.runs import store
from selfguide.runs.rundir import RunDir
from selfguide.settings.evaluation import EvalConfig


def _no_test_rows(run) -> RunDir:
    rd = RunDir(run)
    task = json.loads(rd.task_file.read_text())
    task["test"] = []
    store.atomic_write_json(rd.task_file, task)
    return rd


def _candidates(rd: RunDir, n: int = 14) -> None:
    """A candidates table: two kept rows (trained on) and ``n`` rows the filters dropped."""
    kept = [{"id": "c-k1", "input": "this movie was great and fun", "kept": True},
            {"id": "c-k2", "input": "this film was bad and boring", "kept": True}]
    dropped = [{"id": f"c-d{i}", "input": f"an unseen review number {i}", "kept": False}
               for i in range(n)]
    dropped.append({"id": "c-dup", "input": "  THIS movie was great and fun ", "kept": False})
    dropped.append({"id": "c-demo", "input": "this film was bad", "kept": False})
    dropped.append({"id": "c-empty", "input": "", "kept": False})
    df = pd.DataFrame(kept + dropped)
    buf = rd.candidates_file
    buf.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(buf, index=False)


def _mixed(prompt: str, sampling, i: int) -> str:
    last = prompt.rsplit("Input:", 1)[-1]
    return "positive" if any(d in last for d in "02468") else "negative"


def test_held_out_inputs_are_never_trained_on(workspace, tmp_path):
    rd = _no_test_rows(make_run(workspace, tmp_path / "no-model", n=2))
    _candidates(rd)
    store.atomic_write_text(rd.records_file("val"), json.dumps(
        {"id": "v1", "input": "a validation review", "output": "positive"}) + "\n")
    rows, source = unlabeled.held_out_inputs(rd, rd.read_task())
    inputs = [r["input"] for r in rows]
    assert inputs[0] == "a validation review"  # validation rows first
    assert len(inputs) == 15 and "an unseen review number 3" in inputs
    # trained inputs (even re-spaced / re-cased), demo inputs and empty ones are left out
    assert not any("great and fun" in x.casefold() for x in inputs)
    assert "this film was bad" not in inputs and "" not in inputs
    assert source == "held-out synthetic inputs never trained on: 1 validation, 14 not kept"


def test_training_held_back_rows_count_as_held_out(workspace, tmp_path):
    """Training split dataset/train.jsonl itself (val_fraction): the rows it held back to
    validate were never trained on, recomputed from the saved training settings."""
    rd = _no_test_rows(make_run(workspace, tmp_path / "no-model", n=2))
    recs = [{"id": f"r{i}", "input": f"distinct review {i}", "output": "positive",
             "prompt": "p", "completion": "positive"} for i in range(20)]
    store.atomic_write_text(rd.records_file("train"), "".join(json.dumps(r) + "\n"
                                                              for r in recs))
    store.atomic_write_json(rd.train_config_file, {"train": {"val_fraction": 0.2,
                                                             "min_val_rows": 2, "seed": 3}})
    rows, source = unlabeled.held_out_inputs(rd, rd.read_task())
    assert len(rows) == 4 and source.endswith(": 4 validation")
    from selfguide.settings.training import TrainConfig
    from selfguide.training.trainer import split_validation
    _, val = split_validation(recs, TrainConfig(val_fraction=0.2, min_val_rows=2, seed=3),
                              seed=3)
    assert [r["input"] for r in rows] == [r["input"] for r in val]


def test_unlabeled_eval_reports_shares_agreement_and_collapse(workspace, tmp_path):
    rd = _no_test_rows(make_run(workspace, tmp_path / "no-model", n=2))
    _candidates(rd)
    before, after = FakeGenerator(script=_mixed), FakeGenerator(script="negative\nmore")
    s = evaluation.evaluate(rd.path, EvalConfig(), generators=(before, after, True))
    assert s["mode"] == "unlabeled" and s["n"] == 14
    assert s["before"] is None and s["after"] is None  # nothing to score against
    assert s["answers_after"]["counts"] == {"positive": 0, "negative": 14, "(other)": 0}
    assert s["answers_after"]["entropy"] == 0.0 and s["answers_before"]["entropy"] > 0.9
    assert s["agreed"] + s["changed"] == 14 and 0 < s["agreement"] < 1
    verdict = s["collapse"]
    assert verdict["label"] == "negative" and verdict["count"] == 14
    assert "base" in verdict["spread_by"] and "demos" in verdict["spread_by"]
    assert "Collapse" in verdict["message"] and "use the base model" in verdict["message"]
    assert any("collapse" in w for w in s["warnings"])
    saved = json.loads(rd.metrics_file.read_text())
    assert saved["collapse"]["label"] == "negative" and saved["mode"] == "unlabeled"
    rows = store.read_jsonl(rd.predictions_file)
    assert rows[0]["after"] == "negative" and rows[0]["label_after"] == "negative"
    assert "reference" not in rows[0] and {"before", "changed"} <= set(rows[0])
    # the same model before and after: full agreement, no collapse
    s = evaluation.evaluate(rd.path, EvalConfig(), generators=(before, before, True))
    assert s["agreement"] == 1.0 and s["collapse"] is None and s["warnings"] == []


def test_own_inputs_file_and_saved_inputs(workspace, tmp_path):
    rd = RunDir(make_run(workspace, tmp_path / "no-model", n=2))  # the task HAS test rows
    txt = tmp_path / "mine.txt"
    txt.write_text("first input\n\n  second input \nthird\n")
    assert unlabeled.read_inputs_file(txt) == [
        {"id": "input-1", "input": "first input"}, {"id": "input-3", "input": "second input"},
        {"id": "input-4", "input": "third"}]
    s = evaluation.evaluate(rd.path, EvalConfig(), unlabeled_file=txt,
                            generators=(FakeGenerator(script="positive"),
                                        FakeGenerator(script="positive"), True))
    assert s["mode"] == "unlabeled" and s["n"] == 3 and s["source"] == "your inputs (mine.txt)"
    assert s["collapse"] is None  # 3 inputs say nothing about a collapse
    # inputs saved in the run (the Compare page) are used when the task has no test rows
    _no_test_rows(rd.path)
    assert unlabeled.save_own_inputs(rd, ["one", " ", "two"]) == 2
    assert unlabeled.own_inputs(rd) == ["one", "two"]
    mode, rows, source = evaluation.plan(rd, rd.read_task())
    assert mode == "unlabeled" and [r["input"] for r in rows] == ["one", "two"]
    assert "your own inputs" in source
    assert unlabeled.save_own_inputs(rd, []) == 0 and unlabeled.own_inputs(rd) == []
    csv = tmp_path / "in.csv"
    csv.write_text("input\nhello there\n")
    assert [r["input"] for r in unlabeled.read_inputs_file(csv)] == ["hello there"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(DatasetError, match="no inputs"):
        unlabeled.read_inputs_file(empty)


def test_no_inputs_at_all_names_both_ways_out(workspace, tmp_path):
    rd = _no_test_rows(make_run(workspace, tmp_path / "no-model", n=2))
    with pytest.raises(DatasetError) as err:
        evaluation.plan(rd, rd.read_task())
    assert "no held-out examples and no inputs" in str(err.value)
    assert "Task page" in err.value.hint and "--unlabeled" in err.value.hint


@pytest.mark.parametrize("after,before,demos,collapsed", [
    ({"a": 19, "b": 1}, {"a": 10, "b": 10}, None, True),       # base spreads
    ({"a": 19, "b": 1}, {"a": 20, "b": 0}, {"a": 2, "b": 1}, True),  # demos spread
    ({"a": 19, "b": 1}, {"a": 20, "b": 0}, {"a": 3}, False),    # nothing spreads
    ({"a": 17, "b": 3}, {"a": 10, "b": 10}, None, False),      # 85%: no collapse
    ({"a": 9, "b": 0}, {"a": 5, "b": 4}, None, False),         # too few inputs
    ({"a": 1, "(other)": 19}, {"a": 10, "b": 10}, None, False),  # rambling is not one label
])
def test_collapse_verdict_table(after, before, demos, collapsed):
    v = unlabeled.collapse_verdict(after, before, demos)
    assert (v is not None) == collapsed
    if v:
        assert v["label"] == "a" and v["message"].startswith("Collapse:")


def test_entropy_and_generation_answers():
    assert unlabeled.entropy({"a": 5, "b": 5}) == pytest.approx(1.0)
    assert unlabeled.entropy({"a": 5, "b": 0}) == 0.0 and unlabeled.entropy({}) == 0.0
    counts = unlabeled.answer_counts([f"answer {i % 10}" for i in range(30)], ())
    assert len(counts) == unlabeled.TOP_ANSWERS + 1 and counts["(other)"] == 6


def test_labelled_eval_states_collapse(workspace, tmp_path):
    run = make_run(workspace, tmp_path / "no-model", n=2)
    jl = tmp_path / "held.jsonl"
    jl.write_text("".join(json.dumps({"input": f"review {i}", "output": "positive"}) + "\n"
                          for i in range(12)))
    s = evaluation.evaluate(run, EvalConfig(bootstrap=20), test_file=jl,
                            generators=(FakeGenerator(script=_mixed),
                                        FakeGenerator(script="negative"), True))
    assert s["mode"] == "labelled" and s["collapse"]["label"] == "negative"
    assert "collapse" in s["warnings"][0]
    assert "use the base model" in compare.recommendation(s)


def test_cli_eval_and_run_say_collapse_and_recommend_the_base(workspace, tmp_path,
                                                               monkeypatch, capsys):
    rd = _no_test_rows(make_run(workspace, tmp_path / "no-model", "tickets", n=2))
    _candidates(rd)
    monkeypatch.setattr(evaluation, "build_generators", lambda run_dir, cfg: (
        FakeGenerator(script=_mixed), FakeGenerator(script="negative"), True, {}))
    assert cli.main(["eval", "--run", "tickets", "--bootstrap", "10"]) == 0
    out = capsys.readouterr().out
    assert "inputs without labels" in out and "held-out synthetic inputs" in out
    assert "Agreement:" in out and "entropy" in out
    assert "Collapse: the tuned model answers \u201cnegative\u201d to 14 of 14" in out
    assert "COLLAPSE:" in out and "use the base model" in out
    assert "None" not in out
    # selfguide run: the stages ran (scripted here); the final words recommend the base
    from selfguide.commands import run as run_cmd
    monkeypatch.setattr(run_cmd, "_stage", lambda argv: None)
    args = argparse.Namespace(task="t.json", run="tickets", preset="quick", limit=None,
                              test=None, unlabeled=None)
    assert run_cmd.run(args) == 0
    out = capsys.readouterr().out
    assert "COLLAPSE: The tuned model collapsed to \u201cnegative\u201d" in out
    assert "use the base model, not this adapter" in out


def test_cli_eval_refuses_test_and_unlabeled_together(workspace, tmp_path, capsys):
    make_run(workspace, tmp_path / "no-model", "both", n=2)
    assert cli.main(["eval", "--run", "both", "--test", "a.jsonl", "--unlabeled",
                     "b.txt"]) == 2
    assert "not both" in capsys.readouterr().err


def test_model_card_states_the_unlabeled_comparison_and_collapse(workspace, tmp_path):
    from selfguide.export import cards

    rd = _no_test_rows(make_run(workspace, tmp_path / "no-model", n=2))
    _candidates(rd)
    evaluation.evaluate(rd.path, EvalConfig(), generators=(
        FakeGenerator(script=_mixed), FakeGenerator(script="negative"), True))
    text = cards.model_card(cards.run_facts(rd.path))
    assert "| answer | base model | tuned |" in text and "| negative |" in text
    assert "inputs without labels" in text and "Agreement:" in text
    assert "Collapse: the tuned model answers \u201cnegative\u201d to 14 of 14" in text
    assert "None" not in text.split("## Evaluation")[1].split("## Training data")[0]
    # labelled evaluations state it too
    jl = tmp_path / "held.jsonl"
    jl.write_text("".join(json.dumps({"input": f"review {i}", "output": "positive"}) + "\n"
                          for i in range(12)))
    evaluation.evaluate(rd.path, EvalConfig(bootstrap=10), test_file=jl, generators=(
        FakeGenerator(script=_mixed), FakeGenerator(script="negative"), True))
    text = cards.model_card(cards.run_facts(rd.path))
    assert "| exact match (task metric) |" in text and "**Collapse:" in text


@pytest.mark.slow
def test_cli_train_then_unlabeled_eval_on_the_tiny_model(workspace, tiny_model_dir, capsys):
    """The real loop on the tiny Llama: a task without held-out rows, trained, then
    ``selfguide eval`` compares base and tuned on the rows training held back."""
    run = make_run(workspace, tiny_model_dir, "own", n=24)
    _no_test_rows(run)
    recs = store.read_jsonl(run / "dataset" / "train.jsonl")
    for i, r in enumerate(recs):  # distinct inputs, so held-back rows are new inputs
        r["input"] = f"{r['input']} number {i}"
    store.atomic_write_text(run / "dataset" / "train.jsonl",
                            "".join(json.dumps(r) + "\n" for r in recs))
    assert cli.main(["train", "--run", "own", "--method", "lora", "--precision", "fp32",
                     "--epochs", "1", "--batch-size", "4", "--grad-accum", "1",
                     "--val-fraction", "0.4", "--min-val-rows", "2"]) == 0
    capsys.readouterr()
    assert cli.main(["eval", "--run", "own", "--max-new-tokens", "3",
                     "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "inputs without labels" in out and "validation" in out and "Agreement:" in out
    m = json.loads((run / "eval" / "metrics.json").read_text())
    assert m["mode"] == "unlabeled" and m["n"] == 10
    assert set(m["answers_after"]["counts"]) == {"positive", "negative", "(other)"}

