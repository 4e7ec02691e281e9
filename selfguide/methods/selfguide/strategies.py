"""SELF-GUIDE's label strategies: the one table of their rules, and the pure functions.

What it does: :data:`TABLE` says for every label strategy what it is, where its labels
come from (a candidates-table column), what it needs (label log-probabilities, the
model's own answer scores, the label each input was written for), which filter settings
it uses (the vote share, the calibration margin, balancing) and how ``auto`` treats it
(:data:`SELF_STRATEGIES` in preference order, :data:`AUTO_FALLBACKS`,
:data:`AUTO_WITHOUT_EVIDENCE`). The config's choices, the filters, the report, the
choice, ``selfguide label`` and the Filter page all read it. Then ``rank`` (the likeliest
label) and ``calibrated`` (contextual calibration: each label's mean score over the rows
subtracted first, Zhao et al. 2021 "Calibrate before use"), and :func:`agreement`,
whether a strategy's labels follow the label each generated input was written for more
often than chance.

What it does not do: score labels (the backend) or pick the strategy
(:mod:`selfguide.methods.selfguide.choice`).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

AUTO = "auto"   # not a strategy: resolved to one per run by choice.resolve_filters
OWN = "own"     # the model's own answer in its answer protocol, shares kept


@dataclass(frozen=True)
class LabelStrategy:
    """One way of labelling a classification candidate, and what it takes."""

    name: str
    words: str           # the labels, in a phrase ("the likeliest label")
    source: str          # where they come from, in words (the Filter page's captions)
    column: str          # the candidates-table column they are made from
    self_label: bool = False      # the model labels (auto weighs it on the evidence)
    needs_scores: bool = False    # per-label log-probabilities (``column`` holds them)
    needs_target: bool = False    # the label each input was written for
    balanced: bool = True         # balancing and top-ups apply (own keeps the model's shares)


TABLE: tuple[LabelStrategy, ...] = (
    LabelStrategy("vote", "majority vote of the samples", "the vote", "label_vote",
                  self_label=True),
    LabelStrategy("rank", "the likeliest label", "the ranked label scores", "label_scores",
                  self_label=True, needs_scores=True),
    LabelStrategy("calibrated", "the likeliest label after calibration",
                  "the calibrated label scores", "label_scores", self_label=True,
                  needs_scores=True),
    LabelStrategy(OWN, "the likeliest label in the form the model answers in",
                  "the model's own answers (its likeliest label in the form it answers in)",
                  "answer_scores", needs_scores=True, balanced=False),
    LabelStrategy("target", "the label each input was written for",
                  "the label each input was written for", "target_label", needs_target=True),
    LabelStrategy("agree", "the target label where the self-label agrees",
                  "the target label, kept where the {agree_source} label agrees",
                  "target_label", needs_target=True),
)
BY_NAME = {s.name: s for s in TABLE}
NAMES = (AUTO, *BY_NAME)  # the label_strategy choices, auto first
SELF_STRATEGIES = ("rank", "vote", "calibrated")  # auto's preference order on equal evidence
AUTO_FALLBACKS = (OWN, "target")  # auto when no self-label is trusted: own, else target
AUTO_WITHOUT_EVIDENCE = "vote"    # auto with no labelling evidence (the paper's rule)
# What ``selfguide label`` can label with: the strategies that need no target label.
LABEL_COMMAND_NAMES = (AUTO, *(s.name for s in TABLE if not s.needs_target))


def in_effect(name: str) -> str:
    """The strategy the filters use for ``name``: ``auto`` unresolved (no evidence) is
    :data:`AUTO_WITHOUT_EVIDENCE`."""
    return AUTO_WITHOUT_EVIDENCE if name == AUTO else name


def labels_from(name: str, agree_source: str) -> str:
    """The strategy whose labels the rows carry under ``name`` (``agree`` checks its
    source's; the report's per-strategy table is keyed by it)."""
    name = in_effect(name)
    return agree_source if name == "agree" else name


def uses_vote(name: str, agree_source: str) -> bool:
    """Whether the labels depend on the vote (the vote-share threshold applies)."""
    return labels_from(name, agree_source) == "vote"


def uses_calibration(name: str, agree_source: str) -> bool:
    """Whether the calibration margin applies."""
    return labels_from(name, agree_source) == "calibrated"


def balances(name: str) -> bool:
    """Whether the balance filter applies (never to ``own``: the model's shares)."""
    return BY_NAME[in_effect(name)].balanced


def source(name: str, agree_source: str) -> str:
    """Where the labels come from under ``name``, in words."""
    return BY_NAME[in_effect(name)].source.format(agree_source=agree_source)


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


def labels_by_strategy(rows: Any, labels: Sequence[str]) -> dict[str, list[str]]:
    """Strategy -> one label per row of a candidates table (``""`` where a row has none,
    ``[]`` where the table lacks the strategy's column), made from each strategy's
    column in :data:`TABLE`; ``target`` is the label each row was written for, and
    ``agree`` (which keeps target labels) has no entry."""
    def column(name: str) -> list:
        return rows[name].tolist() if name in rows.columns else []

    out: dict[str, list[str]] = {}
    for s in TABLE:
        if s.name == "agree":
            continue
        if s.name == "calibrated":
            out[s.name] = calibrated_labels(column(s.column), labels)[0]
        elif s.needs_scores:
            out[s.name] = rank_labels(column(s.column), labels)
        else:
            out[s.name] = rows[s.column].fillna("").astype(str).tolist() \
                if s.column in rows.columns else []
    return out


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
