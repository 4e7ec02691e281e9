"""Dataset records, the report (funnel, strategies, degenerate-label diagnostics), I/O."""

from __future__ import annotations

import pandas as pd
import pytest

from selfguide.errors import DatasetError
from selfguide.methods.selfguide.config import FilterConfig
from selfguide.methods.selfguide.filters import apply
from selfguide.methods.selfguide.report import build_report, format_report
from selfguide.methods.selfguide.table import build_records, write_dataset
from selfguide.runs import store
from selfguide.runs.dataset import load_records
from selfguide.task.prompts import task_prompt
from selfguide.task.spec import Demo, TaskSpec

TASK = TaskSpec(name="nli", instruction="Does the premise entail the hypothesis?",
                demos=(Demo("Premise: cats purr. Hypothesis: cats make sounds.", "entails"),
                       Demo("Premise: it rains. Hypothesis: the sun is hot.", "neutral")),
                task_type="classification", labels=("entails", "neutral"),
                metric="exact_match")


def _table(votes, targets, shares=None, scores=None):
    rows = []
    for i, (v, t) in enumerate(zip(votes, targets)):
        rows.append({"id": f"r000-p{i:03d}", "method": "selfguide", "round": 0, "prompt_id": i,
                     "target_label": t, "raw": "", "input": f"Premise: thing {i} here. "
                     f"Hypothesis: other {i} there.", "samples": [v] * 4, "votes": "{}",
                     "vote_share": (shares or [1.0] * len(votes))[i], "output": v,
                     "label_vote": v if v in TASK.labels else "",
                     "label_scores": (scores[i] if scores else [-1.0, -2.0])})
    return apply(pd.DataFrame(rows), FilterConfig(near_duplicate_threshold=1.0), TASK)


def test_records_use_the_evaluation_prompt():
    df = _table(["entails", "neutral", "entails", "neutral"], ["entails", "neutral"] * 2)
    train, val = build_records(df, TASK)
    assert [r["id"] for r in train] == df.loc[df["kept"], "id"].tolist() and val == []
    r = train[0]
    assert set(r) == {"id", "prompt", "completion", "input", "output", "label", "origin"}
    assert r["origin"] == "generated"  # a table without the column: the model wrote it
    assert r["prompt"] == task_prompt(TASK, r["input"]) and r["completion"] == r["label"]
    train, val = build_records(df, TASK, val_fraction=0.5, seed=3)
    assert len(train) == len(val) == 2 and not {x["id"] for x in train} & {x["id"] for x in val}


def test_degenerate_vote_labels_are_diagnosed():
    # the measured failure: every vote says "entails", targets are balanced
    n = 40
    df = _table(["entails"] * n, ["entails", "neutral"] * (n // 2),
                shares=[0.4] * n,
                scores=[[-1.0, -2.0] if i % 2 else [-1.5, -1.2] for i in range(n)])
    rep = build_report(df, TASK, FilterConfig())
    codes = {d["code"]: d for d in rep["diagnostics"]}
    target_rep = build_report(df, TASK, FilterConfig(label_strategy="target"))
    assert {d["code"] for d in target_rep["diagnostics"]} >= {
        "vote_target_agreement_chance", "calibrated_target_agreement_chance"}
    assert codes["dominant_label"]["value"] == 1.0 and codes["dominant_label"]["level"] == "error"
    assert "40 of 40" in codes["dominant_label"]["message"]
    assert codes["low_vote_agreement"]["value"] == pytest.approx(0.4)
    assert codes["vote_target_agreement_chance"]["value"] == 0.5
    assert "single_label" in codes and rep["degenerate"]
    s = rep["strategies"]
    assert s["vote"]["labels"] == {"entails": 40, "neutral": 0}
    assert s["target"]["labels"] == {"entails": 20, "neutral": 20}
    assert s["target"]["target_agreement"] == 1.0
    assert s["calibrated"]["labels"] == {"entails": 20, "neutral": 20}
    text = format_report(rep)
    assert "ERROR" in text and "agreement 50%" in text


def test_healthy_labels_have_no_label_diagnostics():
    votes = ["entails", "neutral"] * 15
    df = _table(votes, votes, scores=[[-1.0, -2.0] if v == "entails" else [-2.0, -1.0]
                                      for v in votes])
    rep = build_report(df, TASK, FilterConfig())
    assert [d["code"] for d in rep["diagnostics"]] == []
    assert rep["labels"] == {"entails": {"generated": 15, "kept": 15},
                             "neutral": {"generated": 15, "kept": 15}}
    assert rep["funnel"][-1]["remaining"] == rep["kept"] == 30 and not rep["degenerate"]


def test_write_and_load(tmp_path):
    df = _table(["entails", "neutral"] * 3, ["entails", "neutral"] * 3)
    rep = write_dataset(tmp_path, df, TASK, FilterConfig(val_fraction=0.34))
    train, val = load_records(tmp_path), load_records(tmp_path, "val")
    assert len(train) + len(val) == 6 and len(val) == 2
    assert rep == store.read_json(tmp_path / "dataset" / "report.json")
    with pytest.raises(DatasetError, match="No dataset"):
        load_records(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="Unknown split"):
        load_records(tmp_path, "test")
    assert load_records(tmp_path / "nothing", "val") == []


def test_empty_dataset_is_an_error_diagnostic():
    df = _table(["maybe"] * 3, ["entails"] * 3)
    rep = build_report(df, TASK, FilterConfig())
    assert rep["kept"] == 0 and rep["diagnostics"][0]["code"] == "empty_dataset"


def test_vote_dominance_reported_even_when_target_strategy_used():
    df = _table(["entails"] * 19 + ["neutral"], ["entails", "neutral"] * 10)
    cfg = FilterConfig(label_strategy="target", near_duplicate_threshold=1.0)
    rep = build_report(apply(df, cfg, TASK), TASK, cfg)
    codes = {d["code"]: d for d in rep["diagnostics"]}
    assert codes["vote_dominant_label"]["level"] == "warning"
    assert codes["vote_dominant_label"]["value"] == 0.95 and "dominant_label" not in codes


def test_overrides_reader_accepts_only_booleans(tmp_path):
    """One reader for every method and the studio: a string "false" is not a keep."""
    from selfguide.methods.candidates import read_overrides
    from selfguide.runs import store

    store.atomic_write_json(tmp_path / "overrides.json",
                            {"a": True, "b": False, "c": "false", "d": 1})
    assert read_overrides(tmp_path) == {"a": True, "b": False}
    store.atomic_write_json(tmp_path / "overrides.json", ["a", "b"])
    from selfguide.errors import RunFileError  # not an object: named, never {} (issue 38)

    with pytest.raises(RunFileError, match="overrides.json holds a list"):
        read_overrides(tmp_path)
    assert read_overrides(tmp_path / "missing") == {}
