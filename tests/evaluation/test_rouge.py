"""selfguide.evaluation.rouge equals rouge_score exactly, on real instructions and on edge cases."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from rouge_score import rouge_scorer
from rouge_score import tokenize as rs_tokenize

from selfguide.evaluation import rouge

SEED_TASKS = Path(__file__).resolve().parents[2] / "selfguide" / "data" / "seed_tasks.jsonl"

EDGE = [
    "", " ", "...", "!!! ??? ---", "\n\t", "a", "A.", "é", "naïve café résumé",
    "日本語のテキスト", "Straße groß", "İstanbul", "ﬁne ligature", "x2 = 3y + 4z",
    "don't stop-believing", "hello hello hello", "Hello, World!", "world hello",
    "the the the the", "🙂 emoji 🙂 text", "123 456", "a b c d e f g",
    "g f e d c b a", "CamelCaseWord and snake_case_word",
]


@pytest.fixture(scope="module")
def scorer():
    return rouge_scorer.RougeScorer(["rougeL"])


@pytest.fixture(scope="module")
def real_texts(niv2_dir) -> list[str]:
    texts: list[str] = []
    for f in sorted(niv2_dir.glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        texts.extend(d["Definition"])
        texts.extend(ex["input"] for ex in d.get("Positive Examples", []))
        texts.extend(inst["input"] for inst in d["Instances"][:150])
    if SEED_TASKS.exists():
        for line in SEED_TASKS.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                texts.append(rec["instruction"])
                texts.extend(i["input"] for i in rec["instances"] if i["input"])
    return texts


def test_tokenize_matches_rouge_score(real_texts):
    for t in real_texts[:300] + EDGE:
        assert list(rouge.tokenize(t)) == rs_tokenize.tokenize(t, None), t


def test_tokenize_with_stemmer_matches(real_texts):
    from nltk.stem import porter

    st = porter.PorterStemmer()
    for t in real_texts[:50] + EDGE:
        assert list(rouge.tokenize(t, stem=True)) == rs_tokenize.tokenize(t, st), t


def test_rouge_l_equals_rouge_score_on_1000_real_pairs(real_texts, scorer):
    rng = random.Random(1234)
    assert len(real_texts) > 200
    for _ in range(1000):
        a, b = rng.choice(real_texts), rng.choice(real_texts)
        # Half the pairs are a text against a perturbed copy, so high overlaps are covered.
        if rng.random() < 0.5:
            words = b.split() or [""]
            words = [w for w in words if rng.random() > 0.2]
            a = " ".join(words)
        want = scorer.score(a, b)["rougeL"].fmeasure
        assert abs(rouge.rouge_l(a, b) - want) <= 1e-9, (a, b)
        assert rouge.rouge_l(a, b) == want  # same operations: bit-identical in fact


@pytest.mark.parametrize("a", EDGE)
def test_edge_cases(a, scorer):
    for b in EDGE:
        assert rouge.rouge_l(a, b) == scorer.score(a, b)["rougeL"].fmeasure, (a, b)


def test_symmetric_and_bounds():
    assert rouge.rouge_l("Write a poem.", "Write a poem.") == 1.0
    assert rouge.rouge_l("", "") == 0.0
    assert rouge.rouge_l("...", "write") == 0.0
    assert rouge.rouge_l("a b c", "c b a") == rouge.rouge_l("c b a", "a b c")


def test_stemming_changes_score(scorer):
    a, b = "running dogs", "run dog"
    assert rouge.rouge_l(a, b) == 0.0
    stemmed = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(a, b)
    assert rouge.rouge_l(a, b, stem=True) == stemmed["rougeL"].fmeasure == 1.0


def test_max_scores_and_index_agree_with_bruteforce(real_texts, scorer):
    rng = random.Random(7)
    pool = rng.sample(real_texts, 60)
    cands = rng.sample(real_texts, 40) + pool[:5] + ["", "???"]
    got = rouge.max_scores(cands, pool)
    ix = rouge.RougeIndex(pool)
    assert len(ix) == len(pool)
    for c, (score, j) in zip(cands, got, strict=True):
        brute = [scorer.score(p, c)["rougeL"].fmeasure for p in pool]
        best = max(brute)
        assert score == best
        assert j == brute.index(best)  # ties go to the lowest index
        assert ix.nearest(c) == (score, j)


def test_empty_pool_and_growth():
    ix = rouge.RougeIndex()
    assert len(ix) == 0
    assert ix.nearest("anything at all") == (0.0, -1)
    assert rouge.max_scores(["a", "b"], []) == [(0.0, -1), (0.0, -1)]
    assert ix.add("Write a poem about cats.") == 0
    ix.add("Classify the sentiment of the review.")
    score, j = ix.nearest("Classify the sentiment of this review")
    assert j == 1 and score > 0.8
    assert ix.nearest("Write a poem about cats.") == (1.0, 0)


def test_max_scores_chunks_large_candidate_lists(monkeypatch):
    monkeypatch.setattr(rouge, "_CHUNK", 3)
    pool = ["alpha beta", "gamma delta", "beta gamma"]
    cands = ["alpha", "delta", "beta gamma", "zeta", "alpha beta", "gamma", "delta gamma"]
    got = rouge.max_scores(cands, pool)
    want = [max((rouge.rouge_l(c, p), -i) for i, p in enumerate(pool)) for c in cands]
    assert [(s, j) for s, j in got] == [(s, -i) for s, i in want]


def test_tokenize_cached():
    rouge.tokenize.cache_clear()
    rouge.tokenize("Some text here")
    rouge.tokenize("Some text here")
    assert rouge.tokenize.cache_info().hits >= 1
