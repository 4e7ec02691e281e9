"""Filters: each one as a table of cases, then ``apply`` (masks, drop reasons, label
strategies, balancing, overrides, properties)."""

from __future__ import annotations

import json
import math
import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfguide.errors import ConfigError
from selfguide.methods.selfguide.config import FilterConfig, preset
from selfguide.methods.selfguide.filters import (
    ORDER,
    apply,
    balance_mask,
    calibrated_labels,
    funnel,
    in_length,
    length_window,
    near_duplicate_scores,
    no_noise,
    not_duplicate,
    not_empty,
)
from selfguide.methods.selfguide.strategies import calibrate
from selfguide.task.spec import Demo, TaskSpec

TASK = TaskSpec(name="s", instruction="Classify.",
                demos=(Demo("the movie was really great fun", "pos"),
                       Demo("the film was bad and boring", "neg"),
                       Demo("I would watch it again tomorrow", "pos")),
                task_type="classification", labels=("pos", "neg"), metric="exact_match")
GEN = TaskSpec(name="g", instruction="Paraphrase.",
               demos=(Demo("what is the best way to learn python", "how should I learn python"),
                      Demo("how do planes stay in the air", "why do planes not fall down")))


@pytest.mark.parametrize("text, ok", [("a", True), ("", False), ("  \n", False)])
def test_not_empty(text, ok):
    assert not_empty([text]) == [ok]


@pytest.mark.parametrize("text, ok", [
    ("What is the weather like?", True),
    ("Input: what is this", False),
    ("Sure, here is a new question: why?", False),
    ("SURE, HERE you go", False),
    ("Where are the keys?", True),               # 'here' inside 'where' is not a term
    ("[INPUT] x", False),
    ("<|assistant|> hi", False),
])
def test_no_noise(text, ok):
    assert no_noise([text], FilterConfig().noise_terms) == [ok]


def test_no_noise_custom_terms():
    assert no_noise(["lorem ipsum", "fine"], ["lorem"]) == [False, True]
    assert no_noise(["anything"], []) == [True]


def test_length_window_from_demos_and_absolute():
    lo, hi = length_window(["a b c d", "a b c d e f", "a b c d e"], k=1.0)
    mean = 5.0
    assert lo == pytest.approx(mean - 1.25) and hi == pytest.approx(mean + 1.25)
    assert length_window(["a b"], k=3, min_words=4, max_words=9) == (4.0, 9.0)
    assert length_window([], k=3) == (1.0, math.inf)


@pytest.mark.parametrize("text, ok", [("one two three", True), ("one", False),
                                      ("w " * 20, False)])
def test_in_length(text, ok):
    assert in_length([text], 2, 10) == [ok]


def test_not_duplicate_case_and_space_insensitive_first_kept():
    texts = ["Hello world", "hello   WORLD", "other", "a demo"]
    assert not_duplicate(texts, existing=["A  demo"]) == [True, False, True, False]


def test_near_duplicate_scores_against_demos_and_earlier():
    s, n = near_duplicate_scores(
        ["the cat sat on the mat", "", "the cat sat on a mat", "completely different words"],
        demos=["a dog ran in the park"], ids=["a", "b", "c", "d"])
    assert n[0] == "demo:0" and s[0] < 0.5
    assert s[1] == 0.0 and n[1] == ""
    assert n[2] == "a" and s[2] > 0.8
    assert s[3] == 0.0


def test_calibrate_and_labels():
    scores = [[-1.0, -3.0], [-1.5, -2.0], [-0.5, -4.0], None]
    assert calibrate([[1, 2], [3, 6]]) == [[-1, -2], [1, 2]]
    labels, margins = calibrated_labels(scores, ["pos", "neg"])
    # means: pos -1.0, neg -3.0 -> row 1: pos -0.5, neg 1.0 -> neg
    assert labels == ["pos", "neg", "pos", ""]
    assert margins[1] == pytest.approx(1.5) and math.isnan(margins[3])


@pytest.mark.parametrize("labels, eligible, expected_counts", [
    (["a", "a", "a", "b"], [True] * 4, {"a": 1, "b": 1}),
    (["a", "a", "b", "b", "c"], [True] * 5, {"a": 1, "b": 1, "c": 1}),
    (["a", "a", "b", "b"], [True, True, True, False], {"a": 1, "b": 1}),
    (["a", "a", "a"], [True] * 3, {"a": 3}),   # one label: nothing to balance against
])
def test_balance_mask(labels, eligible, expected_counts):
    m = balance_mask(labels, eligible, random.Random(0))
    kept = [lab for lab, e, k in zip(labels, eligible, m) if e and k]
    assert {x: kept.count(x) for x in set(kept)} == expected_counts
    assert m == balance_mask(labels, eligible, random.Random(0))  # seeded


def _row(i, inp, target="", samples=None, output="", share=0.0, label_vote="", scores=None):
    return {"id": f"r000-p{i:03d}", "method": "selfguide", "round": 0, "prompt_id": i,
            "target_label": target, "raw": inp, "input": inp, "samples": samples,
            "votes": json.dumps({output: 1}) if output else "{}", "vote_share": share,
            "output": output, "label_vote": label_vote, "label_scores": scores}


def _cls_table():
    return pd.DataFrame([
        _row(0, "this show was a lovely surprise", "pos", ["pos"] * 5, "pos", 1.0, "pos",
             [-1, -3]),
        _row(1, "", "neg"),
        _row(2, "Sure, here is a review of it", "neg"),
        _row(3, "bad", "neg"),                                            # too short
        _row(4, "this show was a lovely surprise", "pos"),               # exact duplicate
        _row(5, "the movie was really great fun!", "pos"),               # near-dup of a demo
        _row(6, "terrible acting and a dull story", "neg", ["neg", "pos", "x", "y", "z"], "neg",
             0.2, "neg", [-3, -1]),
        _row(7, "the sound was off the whole time", "neg", ["maybe"] * 5, "maybe", 1.0, "",
             [-2, -2.5]),
        _row(8, "a slow start but a wonderful ending", "pos", ["neg"] * 5, "neg", 1.0, "neg",
             [-2.2, -2.4]),
        _row(9, "nice colours and a sweet cast too", "pos"),            # never annotated
    ])


def test_apply_drop_reasons_vote():
    out = apply(_cls_table(), FilterConfig(balance=False, min_frequency=0.3), TASK)
    assert out["drop_reason"].tolist() == [
        "", "empty", "noise", "length", "duplicate", "near_duplicate", "consistency", "label",
        "", "annotated"]
    assert out["kept"].tolist() == [r == "" for r in out["drop_reason"]]
    assert out["label"].tolist()[0] == "pos" and out["label"].tolist()[8] == "neg"
    assert len(out) == 10  # never drops rows
    for name in ORDER:
        assert out[f"f_{name}"].dtype == bool


def test_apply_min_frequency_default_keeps_share_02():
    out = apply(_cls_table(), FilterConfig(balance=False), TASK)
    assert out.loc[6, "kept"]


@pytest.mark.parametrize("strategy, extra, kept_labels", [
    ("vote", {}, {0: "pos", 6: "neg", 8: "neg"}),
    ("target", {}, {0: "pos", 6: "neg", 7: "neg", 8: "pos"}),
    # calibrated: means over rows 0,6,7,8 -> pos -2.05, neg -2.225
    ("calibrated", {}, {0: "pos", 6: "neg", 7: "pos", 8: "pos"}),
    ("calibrated", {"calibration_margin": 1.0}, {0: "pos", 6: "neg"}),
    ("agree", {}, {0: "pos", 6: "neg"}),
    ("agree", {"agree_source": "calibrated"}, {0: "pos", 6: "neg", 8: "pos"}),
])
def test_label_strategies(strategy, extra, kept_labels):
    out = apply(_cls_table(), FilterConfig(label_strategy=strategy, balance=False, **extra), TASK)
    got = {i: out.loc[i, "label"] for i in out.index if out.loc[i, "kept"]}
    assert got == kept_labels


def test_apply_balances_classification_seeded():
    rows = [_row(i, f"review number {i} with several words", "pos" if i % 3 else "neg",
                 ["pos" if i % 3 else "neg"] * 3, "pos" if i % 3 else "neg", 1.0,
                 "pos" if i % 3 else "neg") for i in range(30)]
    df = pd.DataFrame(rows)
    out = apply(df, FilterConfig(near_duplicate_threshold=1.0, seed=1), TASK)
    kept = out[out["kept"]]
    assert kept["label"].value_counts().to_dict() == {"pos": 10, "neg": 10}
    assert set(out.loc[~out["kept"], "drop_reason"]) == {"balance"}
    again = apply(df, FilterConfig(near_duplicate_threshold=1.0, seed=1), TASK)
    assert again["kept"].tolist() == out["kept"].tolist()
    capped = apply(df, FilterConfig(near_duplicate_threshold=1.0, max_examples=8), TASK)
    assert capped["kept"].sum() == 8


def test_apply_overrides():
    out = apply(_cls_table(), FilterConfig(balance=False), TASK,
                overrides={"r000-p000": False, "r000-p003": True})
    assert out.loc[0, "drop_reason"] == "manual" and not out.loc[0, "kept"]
    assert out.loc[3, "kept"] and out.loc[3, "drop_reason"] == ""


def test_apply_generation_filters():
    df = pd.DataFrame([
        _row(0, "why do birds sing in the morning", "", ["why are birds singing at dawn"] * 2,
             "why are birds singing at dawn", 1.0),
        _row(1, "how can I cook rice without a pot", "", ["how can I cook rice without a pot"],
             "how can I cook rice without a pot", 1.0),                       # copy
        _row(2, "what makes the ocean salty and blue", "", ["a " * 40], "a " * 40, 1.0),
        _row(3, "why do cats purr when they are happy", "", ["Output: cats?"] * 10,
             "Output: x y z w", 1.0),                                          # noise
        _row(4, "is it safe to swim after eating food", "",
             ["is swimming safe after a meal", "e f g h", "i j k l"],
             "is swimming safe after a meal", 1 / 3),                          # low agreement
        _row(5, "where do the swallows go in winter", "", ["a b c d"] * 3, "a b c d", 1.0),
        _row(6, "which language should a beginner study first", "", ["go to go to go to go to go"] * 2,
             "go to go to go to go to go", 1.0),                               # loops
    ])
    df["agreement"] = [1.0, 1.0, 1.0, 1.0, 0.1, 1.0, 1.0]
    out = apply(df, FilterConfig(min_frequency=0.5, min_agreement=0.5, relation_margin=0.5), GEN)
    # Generation: the exact-vote share no longer decides (min_frequency 0.5 would drop row
    # 4); the consensus agreement does, and pairs unlike the demos' relation go.
    assert out["drop_reason"].tolist() == ["", "copy", "output_length", "output_noise",
                                           "agreement", "relation", "repetition"]
    assert (out["label"] == "").all()
    loose = apply(df, FilterConfig(min_agreement=0.0, relation_margin=5.0,
                                   drop_repetitive=False), GEN)
    assert loose["drop_reason"].tolist()[4:] == ["", "", ""]


def test_apply_input_stage_only():
    out = apply(_cls_table(), FilterConfig(), TASK, stage="input")
    assert out["drop_reason"].tolist()[:6] == ["", "empty", "noise", "length", "duplicate",
                                               "near_duplicate"]
    assert out.loc[9, "kept"] and out.loc[7, "kept"]


def test_near_duplicate_scores_cached_and_threshold_reapplied():
    df = apply(_cls_table(), FilterConfig(), TASK)
    assert "nd_score" in df and df.loc[5, "nd_nearest"] == "demo:0"
    df2 = df.copy()
    df2["nd_score"] = 0.0  # cached values are used, not recomputed
    assert apply(df2, FilterConfig(), TASK).loc[5, "drop_reason"] != "near_duplicate"
    assert df.loc[5, "nd_score"] == 1.0  # same tokens as the demo: dropped even at 1.0
    df2.loc[5, "nd_score"] = 0.95
    assert apply(df2, FilterConfig(near_duplicate_threshold=1.0), TASK).loc[
        5, "drop_reason"] != "near_duplicate"
    assert apply(df2, FilterConfig(near_duplicate_threshold=0.9), TASK).loc[
        5, "drop_reason"] == "near_duplicate"


def test_funnel_counts():
    out = apply(_cls_table(), FilterConfig(balance=False), TASK)
    f = funnel(out)
    assert f[0] == {"step": "generated", "remaining": 10, "dropped": 0}
    assert f[-1]["remaining"] == int(out["kept"].sum())
    assert sum(s["dropped"] for s in f) == 10 - int(out["kept"].sum())


def test_presets_and_validation():
    q, f = preset("quick")
    assert q.total_prompts < preset("paper")[0].total_prompts == 400
    assert preset("paper")[0].n_samples == 10 and f.min_frequency == 0.2
    for bad in ({"min_frequency": 1.5}, {"near_duplicate_threshold": 0},
                {"label_strategy": "magic"}, {"val_fraction": 0.95}):
        with pytest.raises(ConfigError):
            FilterConfig(**bad)
    with pytest.raises(ConfigError, match="Unknown preset"):
        preset("huge")


_texts = st.sampled_from(["", " ", "pos", "neg", "Sure, here is one", "nice film indeed",
                          "a long and winding review of a film", "bad film", "the end"])


@settings(max_examples=60)
@given(st.lists(st.tuples(_texts, st.sampled_from(["pos", "neg", "maybe", ""]),
                          st.floats(0, 1), st.sampled_from(["pos", "neg"])), max_size=25),
       st.sampled_from(["vote", "target", "calibrated", "agree"]))
def test_filter_properties(rows, strategy):
    df = pd.DataFrame([_row(i, inp, target, [out or "x"], out, share,
                            out if out in ("pos", "neg") else "", [-1.0 - share, -1.5])
                       for i, (inp, out, share, target) in enumerate(rows)],
                      columns=list(_row(0, "").keys()))
    cfg = FilterConfig(label_strategy=strategy)
    once = apply(df, cfg, TASK)
    kept = once[once["kept"]]
    assert len(once) == len(df)
    assert set(kept["label"]) <= {"pos", "neg"}
    assert all(x.strip() for x in kept["input"])
    # filtering the kept rows again keeps them (idempotent on its own output)
    twice = apply(kept.drop(columns=["nd_score", "nd_nearest"]).reset_index(drop=True), cfg, TASK)
    assert twice["kept"].all() or strategy == "calibrated"


def test_copies_are_kept_where_the_demos_relation_admits_one():
    """Issue 34: demos whose outputs keep half their input or more (light edits) make a copy
    a near miss the envelope admits (1.0 <= hi + margin / 2); demos that share little
    (answers, summaries) drop copies. The relation margin moves the line."""
    from selfguide.methods.selfguide.relation import demo_relation

    light = TaskSpec(name="l", instruction="Fix the grammar.",
                     demos=(Demo("she go to school every day", "she goes to school every day"),
                            Demo("they was late for the bus", "they were late for the bus")))
    answer = TaskSpec(name="a", instruction="Answer the question.",
                      demos=(Demo("what colour is the sky on a clear day",
                                  "it looks blue when no clouds hide it"),
                             Demo("how many legs does a spider have",
                                  "spiders walk on eight of them")))
    rel = demo_relation([(d.input, d.output) for d in light.demos])
    assert 0.5 <= rel.overlap[1] < 0.9 and not rel.copies and rel.admits_copies(1.0)
    assert not rel.admits_copies(0.2)  # a tight envelope: hi + 0.1 < 1
    assert not demo_relation([(d.input, d.output) for d in answer.demos]).admits_copies(1.0)
    df = pd.DataFrame([_row(0, "he have two cats at home", "", ["he have two cats at home"],
                            "he have two cats at home", 1.0)])
    df["agreement"] = [1.0]
    assert apply(df, FilterConfig(), light).loc[0, "kept"]
    assert apply(df, FilterConfig(relation_margin=0.2), light).loc[0, "drop_reason"] == "copy"
    # copies allowed, the tight envelope still holds the pair to the demos' relation
    assert apply(df, FilterConfig(drop_copies=False, relation_margin=0.2), light).loc[
        0, "drop_reason"] == "relation"
    df.loc[0, "output"] = df.loc[0, "input"] = "what is the capital of france"
    assert apply(df, FilterConfig(), answer).loc[0, "drop_reason"] == "copy"


def test_stage_2_keeps_the_input_where_the_demos_edit_lightly_and_samples_scatter():
    """Issue 34: for light-edit demos the candidates table's consensus counts the input
    itself ("no edit") beside the samples, and the copy filter keeps it; for demos that
    answer, the same samples give the medoid of the samples."""
    from selfguide.methods.selfguide.relation import task_relation
    from selfguide.methods.selfguide.table import build_table

    light = TaskSpec(name="l", instruction="Fix the grammar.",
                     demos=(Demo("she go to school every day", "she goes to school every day"),
                            Demo("they was late for the bus", "they were late for the bus")))
    answer = TaskSpec(name="a", instruction="Rewrite the sentence.",
                      demos=(Demo("he has got two cats at home", "cats: two"),
                             Demo("they were late for the bus again", "the bus: late")))
    assert task_relation(light).edits_lightly and task_relation(light).admits_copies(1.0)
    assert not task_relation(answer).edits_lightly
    text = "he have two cat at home"
    samples = ["he has two cats at his home", "he have two dogs", "two cats he have at home"]
    inputs = [{"id": "r0", "round": 0, "prompt_id": 0, "input": text}]
    df = build_table(inputs, {"r0": {"samples": samples}}, light)
    assert df.loc[0, "output"] == text            # the samples scatter around the input
    filtered = apply(df, FilterConfig(), light)
    assert filtered.loc[0, "kept"]
    # the report, its text and the dataset card say so
    from selfguide.export.cards import _filter_lines
    from selfguide.methods.selfguide.report import build_report, format_report

    rep = build_report(filtered, light, FilterConfig())
    assert rep["answers"]["edits_lightly"] and rep["answers"]["kept_unchanged"] == 1
    line = "the input itself (no edit) was a candidate: 1 of 1 kept answers leave it unchanged"
    assert line in format_report(rep) and any(line in x for x in _filter_lines(rep))
    df = build_table(inputs, {"r0": {"samples": samples}}, answer)
    assert df.loc[0, "output"] in samples         # elsewhere the input is no candidate
    from selfguide.methods.selfguide.report import unchanged_answers

    # the count the report and the Filter page give: case and spacing aside, empty answers out
    assert unchanged_answers(["A  b", "c", "d"], ["a b", "", "e"]) == (1, 2)
