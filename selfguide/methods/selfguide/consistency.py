"""Self-consistency voting over sampled answers (SELF-GUIDE stage 2).

For each input the model samples n answers; :func:`vote` picks the most common one (ties go
to the shortest, then alphabetical, so the result is deterministic) and reports its share
of the n samples. Whether that share is high enough (``min_frequency``, paper default 0.2)
is decided by the filters, so the threshold can change without re-voting.

For classification the samples are first mapped onto the label set
(:func:`selfguide.task.parsing.map_label`), so "Entailment." and "entailment" vote together; an
answer that maps to no label votes as itself and, if it wins, is dropped by the label
filter. Empty answers do not vote but still count in the denominator.

Generation answers rarely coincide as exact strings, so :func:`consensus` picks the sample
that agrees most with the others (minimum Bayes risk under ROUGE-L: the medoid; "universal
self-consistency") and reports that agreement, the mean ROUGE-L to the other samples
(empty ones count as 0), in place of the exact-vote share. Where the demos edit their inputs
lightly, the input itself joins the candidates ("no edit") and weighs as a witness as much
as half the samples (:data:`INPUT_WEIGHT`), itself included: an edit wins only where the
samples agree on it nearly as one. Elsewhere answers that copy the input only take part
when every sample is a copy.

Pure functions; no model calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from selfguide.task.parsing import map_label, parse_output

# Where the demos edit lightly, the input as a witness weighs this share of the samples
# (issue 34). Chosen on the label quality of stage 2 (its answers against references) on
# rows outside any evaluation: on task1345 and task1562's unused rows the labels scored
# 38.7 / 52.4 ROUGE-L with the input as one more sample, 41.3 / 53.7 at half the samples
# (copying the input: 41.2 / 54.8); checked on three more light-edit tasks (task132,
# task1195, task1557: 78.5 -> 79.8, 72.0 -> 76.2, 79.6 -> 81.3), the first of which the
# model's edits beat copying (69.3). At the full weight of the samples every answer is the
# input, and task132 falls to its copy score: bench/README, session 21.
INPUT_WEIGHT = 0.5


@dataclass(frozen=True)
class Vote:
    output: str            # the winning answer ("" when every sample was empty)
    share: float           # winner's count / number of samples
    votes: dict[str, int]  # answer -> count, most common first


def vote(answers: Sequence[str]) -> Vote:
    """Majority vote over already-cleaned answers; ties to the shortest, then alphabetical."""
    counts = Counter(a for a in answers if a)
    if not counts:
        return Vote("", 0.0, {})
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0]))
    winner, n = ordered[0]
    return Vote(winner, n / len(answers), dict(ordered))


def clean_samples(samples: Sequence[str], labels: Sequence[str] = ()) -> list[str]:
    """Parse raw samples into answers; with ``labels``, map each onto the label set."""
    out = []
    for s in samples:
        ans = parse_output(s, single_line=bool(labels))
        if labels and ans:
            ans = map_label(ans, labels) or ans
        out.append(ans)
    return out


def consensus(answers: Sequence[str], against: Sequence[str] | None = None, *,
              prior: str = "", prior_weight: float = 0.0) -> Vote:
    """The medoid of the answers under ROUGE-L and its mean agreement with the others.

    Candidates are the non-empty ``answers``; each is scored by its mean ROUGE-L F to the
    other samples of ``against`` (default: ``answers``; empty samples count as 0), so
    ``share`` is 1.0 when every sample is the same text and 0.0 with one sample.
    ``prior`` (a text, with ``prior_weight`` > 0) is one more candidate and a witness worth
    ``prior_weight`` samples, for every candidate itself included: a pseudo-reference
    rather than a draw, so minimum Bayes risk against the samples and it. ``votes`` keeps
    the exact-string counts of ``answers`` for display. Ties go to the shortest, then
    alphabetical.
    """
    from selfguide.evaluation.rouge import rouge_l

    pool = list(against if against is not None else answers)
    counts = Counter(a for a in answers if a)
    w = prior_weight if prior and prior_weight > 0 else 0.0
    if not counts and not w:
        return Vote("", 0.0, {})
    pool_counts = Counter(pool)
    best, best_score = "", -1.0
    for a in sorted({*counts, *([prior] if w else [])}, key=lambda x: (len(x), x)):
        # a sample is not its own witness; the prior, not being a draw, is its own
        own = min(1, pool_counts.get(a, 0)) if a in counts else 0
        others = len(pool) - own + w
        total = sum(n * (1.0 if b == a else rouge_l(a, b)) for b, n in pool_counts.items()
                    if b) - own
        if w:
            total += w * (1.0 if a == prior else rouge_l(a, prior))
        score = total / others if others else 0.0
        if score > best_score + 1e-12:
            best, best_score = a, score
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0])))
    return Vote(best, round(best_score, 6), ordered)


def vote_samples(samples: Sequence[str], labels: Sequence[str] = (), *,
                 source: str | None = None, copies: bool = False) -> Vote:
    """:func:`clean_samples` then :func:`vote`.

    With ``source`` (generation tasks: the input) the answer is the :func:`consensus` of
    the samples. ``copies`` (the demos edit their inputs lightly:
    :attr:`~selfguide.methods.selfguide.relation.Relation.edits_lightly`): the input itself
    is a candidate and a witness worth :data:`INPUT_WEIGHT` of the samples (itself
    included), so a rewrite is kept only when the samples agree on it nearly as one -- a
    small model's rewrites of a light-edit task drift further from the answer than the
    input does unless they agree (issue 34). Otherwise answers that merely copy the input cannot be chosen unless
    every answer is a copy -- a small model asked to answer or summarise often echoes its
    input, and one real answer among the samples is worth more; the copies still witness
    the agreement. ``votes`` counts the samples only.
    """
    answers = clean_samples(samples, labels)
    if source is None:
        return vote(answers)
    if copies:
        v = consensus(answers, prior=source.strip(),
                      prior_weight=INPUT_WEIGHT * max(1, len(answers)))
        return Vote(v.output, v.share, vote(answers).votes)
    key = " ".join(source.casefold().split())
    real = [a if " ".join(a.casefold().split()) != key else "" for a in answers]
    if any(real):
        return consensus(real, against=answers)
    return consensus(answers)
