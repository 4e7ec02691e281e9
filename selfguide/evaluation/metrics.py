"""Scoring predictions: exact match, ROUGE-L, the SELF-GUIDE paper's lenient exact match and
character-level ROUGE-L, per-label accuracy, confusion matrix and a paired bootstrap
confidence interval for a before/after difference.

Pure functions over lists of strings and numbers; randomness comes in as an explicit seed.
Exact match uses light normalisation (surrounding whitespace, case, trailing punctuation);
ROUGE-L is the F-measure with Porter stemming, as in the Natural Instructions evaluation
(``selfguide.evaluation.rouge``, proven equal to ``rouge-score``). The paper's two metrics are reported
beside them (:data:`REPORTED`) so results can be set against its tables: ``lenient_em`` and
``paper_rouge_l``. A prediction is scored against every accepted reference and keeps the
best. This module does not load models or read files.
"""

from __future__ import annotations

import math
import random
import re
import string
from collections import Counter
from collections.abc import Sequence

_TRAILING = re.compile(f"[\\s{re.escape(string.punctuation)}]+$")
_SPACES = re.compile(r"\s+")
OTHER = "(other)"


def normalize(text: str) -> str:
    """Strip, case-fold, collapse spaces and drop trailing punctuation: ``' Yes.'`` -> ``'yes'``."""
    text = _SPACES.sub(" ", (text or "").strip()).casefold()
    return _TRAILING.sub("", text)


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (answers often continue after a newline)."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised reference, else 0.0."""
    p = normalize(prediction)
    return float(any(p == normalize(r) for r in references))


def rouge_l(prediction: str, references: Sequence[str]) -> float:
    """Best ROUGE-L F-measure (stemmed) of the prediction against the references.

    Uses :mod:`selfguide.evaluation.rouge`, proven equal to ``rouge-score`` (tests/test_rouge.py).
    """
    from selfguide.evaluation.rouge import rouge_l as _rl

    return max((_rl(prediction, r, stem=True) for r in references), default=0.0)


def lenient_exact_match(prediction: str, references: Sequence[str]) -> float:
    """The SELF-GUIDE paper's exact match: 1.0 when a reference appears in the prediction.

    Case-insensitive substring test of each stripped, non-empty reference in the prediction
    (``'The answer is Positive.'`` counts for ``'positive'``). Lenient on purpose: a model
    that keeps talking after the label still scores. The paper's released code
    (``find_last_occurrence`` in Prompt2Model-Self-Distill) takes the last label found in the
    output and compares it with the gold label; the two agree unless an output names
    several labels.
    """
    p = (prediction or "").casefold()
    return float(any(r.strip() and r.strip().casefold() in p for r in references))


def char_lcs_f1(prediction: str, references: Sequence[str]) -> float:
    """The SELF-GUIDE paper's "ROUGE-L": F1 of the character-level longest common
    subsequence of the raw strings (no lower-casing, no tokenization), best reference.

    precision = LCS / len(prediction), recall = LCS / len(reference); 0 when either is
    empty or nothing is shared (the paper's ``rouge_l_score``).
    """
    from rapidfuzz.distance import LCSseq

    from selfguide.evaluation.rouge import lcs_f1

    pred = prediction or ""
    return max((lcs_f1(LCSseq.similarity(r, pred), len(r), len(pred)) for r in references),
               default=0.0)


METRICS = {"exact_match": exact_match, "rouge_l": rouge_l}
# Every evaluation reports all of these, whatever the task's own metric; summary keys.
REPORTED = {"exact_match": exact_match, "rouge_l": rouge_l,
            "lenient_em": lenient_exact_match, "paper_rouge_l": char_lcs_f1}


def score(metric: str, prediction: str, references: Sequence[str]) -> float:
    """Score one prediction with ``metric`` ('exact_match' or 'rouge_l')."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    return METRICS[metric](prediction, references)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def to_label(prediction: str, labels: Sequence[str]) -> str:
    """The label a prediction names after normalisation, or ``OTHER``."""
    from selfguide.task.parsing import canonical_label

    return canonical_label(prediction, labels) or OTHER


def confusion(references: Sequence[str], predictions: Sequence[str],
              labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """``matrix[reference_label][predicted_label]`` counts; unknown predictions -> OTHER."""
    cols = [*labels, OTHER]
    m = {lab: {c: 0 for c in cols} for lab in labels}
    for ref, pred in zip(references, predictions):
        r = to_label(ref, labels)
        if r == OTHER:
            continue
        m[r][to_label(pred, labels)] += 1
    return m


def label_accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of rows whose (already canonical) label equals the reference (nan without
    rows)."""
    return (sum(a == b for a, b in zip(predictions, references)) / len(references)
            if references else math.nan)


def per_label_accuracy(references: Sequence[str], predictions: Sequence[str],
                       labels: Sequence[str]) -> dict[str, float | None]:
    """Accuracy among the examples of each reference label (None if a label has none)."""
    m = confusion(references, predictions, labels)
    out: dict[str, float | None] = {}
    for lab in labels:
        n = sum(m[lab].values())
        out[lab] = m[lab][lab] / n if n else None
    return out


def paired_bootstrap(before: Sequence[float], after: Sequence[float], *, samples: int = 1000,
                     seed: int = 0, alpha: float = 0.05) -> dict[str, float]:
    """Mean of ``after - before`` and its percentile bootstrap (1 - alpha) interval.

    Resamples example indices with replacement (the same indices for both columns, so the
    pairing is kept). ``p_le_0`` is the share of resamples whose difference is <= 0.
    """
    if len(before) != len(after):
        raise ValueError("before and after must have the same length")
    n = len(before)
    diffs = [a - b for a, b in zip(after, before)]
    delta = mean(diffs)
    if n == 0 or samples == 0:
        return {"delta": delta, "low": delta, "high": delta, "p_le_0": float(delta <= 0),
                "samples": 0}
    rng = random.Random(seed)
    stats = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    lo = stats[max(0, math.floor(alpha / 2 * samples))]
    hi = stats[min(samples - 1, math.ceil((1 - alpha / 2) * samples) - 1)]
    return {"delta": delta, "low": lo, "high": hi,
            "p_le_0": sum(s <= 0 for s in stats) / samples, "samples": samples}


def summarize(metric: str, references: Sequence[Sequence[str]], before: Sequence[str] | None,
              after: Sequence[str], *, labels: Sequence[str] = (), bootstrap: int = 1000,
              seed: int = 0) -> dict:
    """All metrics of one evaluation: per-example scores, means, CI, label tables."""
    s_after = [score(metric, p, r) for p, r in zip(after, references)]
    out: dict = {"metric": metric, "n": len(after), "after": mean(s_after),
                 "scores_after": s_after}
    refs0 = [r[0] if r else "" for r in references]
    if labels:
        out["per_label_after"] = per_label_accuracy(refs0, after, labels)
        out["confusion_after"] = confusion(refs0, after, labels)
        out["predicted_labels_after"] = label_counts(after, labels)
    if before is not None:
        s_before = [score(metric, p, r) for p, r in zip(before, references)]
        out["before"] = mean(s_before)
        out["scores_before"] = s_before
        out["difference"] = paired_bootstrap(s_before, s_after, samples=bootstrap, seed=seed)
        out["changed"] = sum(normalize(a) != normalize(b) for a, b in zip(after, before))
        if labels:
            out["per_label_before"] = per_label_accuracy(refs0, before, labels)
            out["confusion_before"] = confusion(refs0, before, labels)
            out["predicted_labels_before"] = label_counts(before, labels)
    for name, fn in REPORTED.items():
        out[name] = ({k: out[k] for k in ("after", "before", "difference") if k in out}
                     if name == metric else
                     _metric_block(fn, references, before, after, bootstrap, seed))
    return out


def _metric_block(fn, references: Sequence[Sequence[str]], before: Sequence[str] | None,
                  after: Sequence[str], bootstrap: int, seed: int) -> dict:
    """``{"after", "before", "difference"}`` of one metric, shaped like the top level."""
    s_after = [fn(p, r) for p, r in zip(after, references)]
    block: dict = {"after": mean(s_after)}
    if before is not None:
        s_before = [fn(p, r) for p, r in zip(before, references)]
        block["before"] = mean(s_before)
        block["difference"] = paired_bootstrap(s_before, s_after, samples=bootstrap, seed=seed)
    return block


def label_counts(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, int]:
    """Label -> predictions that name it (``to_label``), unknown ones as :data:`OTHER`:
    THE label count of evaluation (metrics, the unlabeled mode)."""
    counts = {lab: 0 for lab in [*labels, OTHER]}
    for p in predictions:
        counts[to_label(p, labels)] += 1
    return counts


def repetitive(text: str, n: int = 3, times: int = 3) -> bool:
    """Whether ``text`` repeats one ``n``-gram ``times`` or more and the repeats cover a
    third of it or more (a phrase looping to the token limit)."""
    from selfguide.evaluation.rouge import tokenize

    tokens = tokenize(text)
    if len(tokens) < n * times:
        return False
    grams = Counter(tuple(tokens[k:k + n]) for k in range(len(tokens) - n + 1))
    count = max(grams.values())
    return count >= times and count * n >= len(tokens) / 3
