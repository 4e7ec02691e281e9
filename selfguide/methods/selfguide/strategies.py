"""SELF-GUIDE's label strategies over per-label log-probabilities: pure functions.

What it does: ``rank`` (the likeliest label) and ``calibrated`` (contextual calibration:
each label's mean score over the rows subtracted first, Zhao et al. 2021 "Calibrate before
use"), used by the filters, the report and the labelling-protocol choice; and
:func:`agreement`, whether a strategy's labels follow the label each generated input was
written for more often than chance.

What it does not do: score labels (the backend) or pick the strategy
(:mod:`selfguide.methods.selfguide.labelling`).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any


def calibrate(scores: Sequence[Sequence[float]]) -> list[list[float]]:
    """Contextual calibration: subtract each label's mean score over all the rows."""
    rows = [list(map(float, r)) for r in scores]
    if not rows:
        return []
    k = len(rows[0])
    means = [statistics.fmean(r[j] for r in rows) for j in range(k)]
    return [[r[j] - means[j] for j in range(k)] for r in rows]


def calibrated_labels(scores: Sequence[Sequence[float] | None], labels: Sequence[str]
                      ) -> tuple[list[str], list[float]]:
    """Per row: the label with the best calibrated score and its margin over the second
    ("" and nan where a row has no scores). Means are taken over the rows with scores."""
    import numpy as np

    k = len(labels)
    idx = [i for i, s in enumerate(scores) if _has_scores(s, k)]
    out_l, out_m = [""] * len(scores), [math.nan] * len(scores)
    if not idx:
        return out_l, out_m
    mat = np.asarray([list(scores[i]) for i in idx], dtype=np.float64)
    mat -= mat.mean(axis=0, keepdims=True)
    order = np.argsort(-mat, axis=1, kind="stable")
    best = mat[np.arange(len(idx)), order[:, 0]]
    second = mat[np.arange(len(idx)), order[:, 1]] if k > 1 else np.full(len(idx), -np.inf)
    for i, j, m in zip(idx, order[:, 0].tolist(), (best - second).tolist()):
        out_l[i], out_m[i] = labels[j], m
    return out_l, out_m


def rank_labels(scores: Sequence[Sequence[float] | None], labels: Sequence[str]) -> list[str]:
    """Per row: the label with the highest log-probability ("" where a row has no scores)."""
    k = len(labels)
    return [labels[max(range(k), key=lambda j: float(s[j]))] if _has_scores(s, k) else ""
            for s in scores]


def _has_scores(s: Any, k: int) -> bool:
    try:
        return s is not None and len(s) == k and k > 0
    except TypeError:
        return False


MIN_AGREEMENT_ROWS = 10  # fewer rows with both labels: no agreement evidence either way


def agreement(labels: Sequence[str], targets: Sequence[str], label_set: Sequence[str]
              ) -> dict | None:
    """How often ``labels`` equal the label each input was written for (``targets``),
    against chance: ``{"rows", "agree", "chance", "p"}``, or None with fewer than
    ``MIN_AGREEMENT_ROWS`` rows that have both.

    Chance is what labels drawn independently with the same shares would agree (the sum
    over labels of the two shares' product), so a strategy that answers one label to
    everything is not rewarded for it; ``p`` is the one-sided binomial probability of
    agreeing this often by chance.
    """
    pairs = [(a, t) for a, t in zip(labels, targets) if a in label_set and t in label_set]
    m = len(pairs)
    if m < MIN_AGREEMENT_ROWS:
        return None
    hits = sum(a == t for a, t in pairs)
    own, asked = Counter(a for a, _ in pairs), Counter(t for _, t in pairs)
    chance = sum(own[x] * asked[x] for x in label_set) / (m * m)
    return {"rows": m, "agree": round(hits / m, 4), "chance": round(chance, 4),
            "p": round(_binomial_tail(hits, m, chance), 6)}


def _binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * math.log(p) + (n - i) * math.log1p(-p) for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(x - top) for x in logs))
