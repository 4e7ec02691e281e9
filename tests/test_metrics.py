"""Metrics, bootstrap CI and comparison tables (pure, no model)."""

from __future__ import annotations

import pytest

from selfguide import compare
from selfguide import metrics as M


@pytest.mark.parametrize("pred,refs,expected", [
    ("entails", ["entails"], 1.0),
    (" Entails. ", ["entails"], 1.0),
    ("ENTAILS!!", ["entails"], 1.0),
    ("neutral", ["entails"], 0.0),
    ("entails because", ["entails"], 0.0),
    ("yes", ["no", "Yes"], 1.0),
    ("", ["no"], 0.0),
])
def test_exact_match(pred, refs, expected):
    assert M.exact_match(pred, refs) == expected


def test_rouge_l_matches_rouge_score_with_stemming():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    pairs = [("What do I do after my MBBS?", "What can one do after MBBS?"),
             ("running dogs", "the dog runs"), ("", "x"), ("same words", "same words")]
    for p, r in pairs:
        assert M.rouge_l(p, [r]) == pytest.approx(scorer.score(r, p)["rougeL"].fmeasure)
    # best of several references
    assert M.rouge_l("the cat sat", ["a dog", "the cat sat"]) == 1.0


def test_first_line():
    assert M.first_line("\n  entails\nBecause the premise...") == "entails"
    assert M.first_line("") == ""


def test_confusion_and_per_label():
    labels = ("yes", "no")
    refs = ["yes", "yes", "no", "no", "no"]
    preds = ["yes", "no", "no", "maybe", "No."]
    m = M.confusion(refs, preds, labels)
    assert m == {"yes": {"yes": 1, "no": 1, M.OTHER: 0},
                 "no": {"yes": 0, "no": 2, M.OTHER: 1}}
    acc = M.per_label_accuracy(refs, preds, labels)
    assert acc == {"yes": 0.5, "no": pytest.approx(2 / 3)}
    assert M.per_label_accuracy(["yes"], ["yes"], labels)["no"] is None


def test_bootstrap_constant_difference_has_degenerate_ci():
    before = [0.0, 1.0, 0.5, 0.25]
    after = [b + 0.25 for b in before]
    ci = M.paired_bootstrap(before, after, samples=200, seed=1)
    assert ci["delta"] == pytest.approx(0.25)
    assert ci["low"] == pytest.approx(0.25) and ci["high"] == pytest.approx(0.25)
    assert ci["p_le_0"] == 0.0


def test_bootstrap_known_case_and_seed():
    # 10 examples: 6 improved by 1, 4 unchanged -> mean diff 0.6; the bootstrap mean of a
    # Bernoulli(0.6) sample of 10 has sd sqrt(.24/10)=0.155, so the 95% CI is ~[0.3, 0.9].
    before = [0.0] * 10
    after = [1.0] * 6 + [0.0] * 4
    a = M.paired_bootstrap(before, after, samples=2000, seed=7)
    b = M.paired_bootstrap(before, after, samples=2000, seed=7)
    assert a == b  # seeded, reproducible
    assert a["delta"] == pytest.approx(0.6)
    assert 0.2 <= a["low"] <= 0.4 and 0.8 <= a["high"] <= 1.0
    assert a["low"] < 0.6 < a["high"]
    # pairing matters: swapping columns negates the interval
    c = M.paired_bootstrap(after, before, samples=2000, seed=7)
    assert c["delta"] == pytest.approx(-0.6)
    assert c["low"] == pytest.approx(-a["high"]) and c["high"] == pytest.approx(-a["low"])


def test_bootstrap_length_mismatch():
    with pytest.raises(ValueError):
        M.paired_bootstrap([1.0], [1.0, 0.0])


def test_summarize_classification():
    refs = [["yes"], ["no"], ["no"], ["yes"]]
    before = ["yes", "yes", "yes", "yes"]
    after = ["yes", "no", "no", "no"]
    s = M.summarize("exact_match", refs, before, after, labels=("yes", "no"), bootstrap=100)
    assert s["before"] == 0.5 and s["after"] == 0.75
    assert s["difference"]["delta"] == pytest.approx(0.25)
    assert s["changed"] == 3
    assert s["per_label_before"] == {"yes": 1.0, "no": 0.0}
    assert s["per_label_after"] == {"yes": 0.5, "no": 1.0}
    assert s["predicted_labels_before"] == {"yes": 4, "no": 0, M.OTHER: 0}
    assert s["confusion_after"]["yes"]["no"] == 1


def test_summarize_generation_without_before():
    s = M.summarize("rouge_l", [["a b c"]], None, ["a b c"])
    assert s["after"] == 1.0 and "before" not in s and "difference" not in s


def test_compare_table():
    m = {"task": "t", "metric": "exact_match", "n": 4, "before": 0.5, "after": 0.75,
         "difference": {"delta": 0.25, "low": 0.0, "high": 0.5}, "changed": 3}
    rows = compare.side_by_side([compare.run_row("b", m, {"rows": 10}),
                                 compare.run_row("a", None)])
    text = compare.format_table(rows)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["run", "task", "metric"]
    assert "a" == lines[2].split()[0]  # task '' sorts first
    assert "+25.0" in text and "[0.0, 50.0]" in text and "75.0" in text
    assert "yes" in compare.label_table({"per_label_after": {"yes": 1.0},
                                          "per_label_before": {"yes": 0.5}})
