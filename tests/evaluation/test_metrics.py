"""Metrics, bootstrap CI and comparison tables (pure, no model)."""

from __future__ import annotations

import math

import pytest

from selfguide.evaluation import compare
from selfguide.evaluation import metrics as M


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


# --------------------------------------------------------------------------- the paper's metrics

@pytest.mark.parametrize("pred,refs,expected", [
    ("positive", ["positive"], 1.0),
    ("The answer is Positive.", ["positive"], 1.0),   # the gold label appears in it
    ("positive or negative", ["negative"], 1.0),      # lenient: any appearance counts
    ("neg", ["negative"], 0.0),                       # a prefix of the label does not
    ("yes", ["no", " Yes "], 1.0),                    # any reference, stripped
    ("", ["no"], 0.0),
    ("anything", ["", "  "], 0.0),                    # blank references never match
])
def test_lenient_exact_match_hand_computed(pred, refs, expected):
    assert M.lenient_exact_match(pred, refs) == expected


@pytest.mark.parametrize("pred,refs,expected", [
    ("abc", ["abd"], 2 / 3),            # LCS "ab": P = R = 2/3
    ("ab", ["abcd"], 2 / 3),            # LCS 2: P = 1, R = 1/2, F = 2/3
    ("Cat", ["cat"], 2 / 3),            # case-sensitive: LCS "at"
    ("a b", ["ab"], 0.8),               # spaces are characters: LCS 2, P = 2/3, R = 1
    ("xyz", ["abc"], 0.0),
    ("", ["abc"], 0.0),
    ("abc", ["xyz", "abc"], 1.0),       # best reference
])
def test_char_lcs_f1_hand_computed(pred, refs, expected):
    assert M.char_lcs_f1(pred, refs) == pytest.approx(expected)


def _paper_rouge_l(gt: str, gen: str) -> float:
    """The paper's rouge_l_score for one pair: O(n*m) character LCS, then F1."""
    dp = [[0] * (len(gen) + 1) for _ in range(len(gt) + 1)]
    for i in range(1, len(gt) + 1):
        for j in range(1, len(gen) + 1):
            dp[i][j] = (dp[i - 1][j - 1] + 1 if gt[i - 1] == gen[j - 1]
                        else max(dp[i - 1][j], dp[i][j - 1]))
    lcs = dp[-1][-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(gen), lcs / len(gt)
    return 2 * p * r / (p + r)


def test_char_lcs_f1_equals_the_papers_dynamic_programme():
    import random

    rng = random.Random(0)
    for _ in range(200):
        a = "".join(rng.choice("abc d") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("abc d") for _ in range(rng.randint(0, 12)))
        assert M.char_lcs_f1(a, [b]) == _paper_rouge_l(b, a)


def test_summary_reports_every_metric_with_ci():
    refs = [["positive"], ["negative"], ["negative"]]
    before = ["It is positive", "positive", "negative"]
    after = ["positive", "negative", "Negative."]
    s = M.summarize("exact_match", refs, before, after, bootstrap=100, seed=0)
    assert set(M.REPORTED) <= set(s)
    assert s["exact_match"] == {"after": s["after"], "before": s["before"],
                                "difference": s["difference"]}
    assert s["exact_match"]["before"] == pytest.approx(1 / 3)   # strict: only row 3
    assert s["lenient_em"]["before"] == pytest.approx(2 / 3)    # row 1 names the label
    assert s["lenient_em"]["after"] == 1.0
    assert s["lenient_em"]["difference"]["delta"] == pytest.approx(1 / 3)
    assert s["paper_rouge_l"]["after"] == pytest.approx(
        (1 + 1 + M.char_lcs_f1("Negative.", ["negative"])) / 3)
    assert {"low", "high", "p_le_0"} <= set(s["paper_rouge_l"]["difference"])
    only_after = M.summarize("rouge_l", refs, None, after, bootstrap=10)
    assert set(only_after["lenient_em"]) == {"after"}
    table = compare.format_metric_rows(s)
    assert "lenient EM" in table and "character LCS" in table and "+33.3" in table


def test_label_accuracy_counts_equal_labels_and_is_nan_without_rows():
    assert M.label_accuracy(["yes", "no", "yes", "no"], ["yes", "yes", "yes", "no"]) == 0.75
    assert math.isnan(M.label_accuracy([], []))


@pytest.mark.parametrize("text,loops", [
    ("what is the best way to learn what is the best way to learn what is the best way", True),
    ("go to go to go to go to go", True),
    ("the cat sat on the mat", False),
    ("a b c a b d a b e", False),  # a 2-gram thrice, no 3-gram repeated
])
def test_repetitive_flags_a_phrase_looping_over_the_answer(text, loops):
    assert M.repetitive(text) is loops


def test_score_predictions_counts_degenerate_predictions():
    from selfguide.evaluation.predict import score_predictions
    from selfguide.settings.evaluation import EvalConfig
    from selfguide.task.spec import Demo, TaskSpec

    task = TaskSpec(name="p", instruction="Paraphrase.", demos=(Demo("a b", "b a"),) * 3)
    examples = [{"id": "1", "input": "x", "outputs": ["y"]},
                {"id": "2", "input": "z", "outputs": ["w"]}]
    _, summary = score_predictions(task, examples, ["y", "go to go to go to go to go"],
                                   ["y", "w"], EvalConfig(bootstrap=10))
    assert summary["degenerate"] == {"after": 0, "before": 1}
