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
lightly, the input itself joins the candidates ("no edit"): it wins when the samples scatter
around it rather than agree on an edit. Elsewhere answers that copy the input only take part
when every sample is a copy.

Pure functions; no model calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from selfguide.methods.checks import text_key
from selfguide.task.parsing import map_label, parse_output


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


def consensus(answers: Sequence[str], against: Sequence[str] | None = None) -> Vote:
    """The medoid of the answers under ROUGE-L and its mean agreement with the others.

    Candidates are the non-empty ``answers``; each is scored by its mean ROUGE-L F to the
    other samples of ``against`` (default: ``answers``; empty samples count as 0), so
    ``share`` is 1.0 when every sample is the same text and 0.0 with one sample.
    ``votes`` keeps the exact-string counts for display. Ties go to the shortest, then
    alphabetical.
    """
    from selfguide.evaluation.rouge import rouge_l

    pool = list(against if against is not None else answers)
    counts = Counter(a for a in answers if a)
    if not counts:
        return Vote("", 0.0, {})
    pool_counts = Counter(pool)
    best, best_score = "", -1.0
    for a in sorted(counts, key=lambda x: (len(x), x)):
        own = min(1, pool_counts.get(a, 0))  # the candidate itself is not its own witness
        others = len(pool) - own
        total = sum(n * (1.0 if b == a else rouge_l(a, b)) for b, n in pool_counts.items()
                    if b) - own
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
    is a candidate and a witness beside the samples, so a rewrite is kept only when the
    samples agree on it more than they agree with the unchanged input -- a small model's
    scattered rewrites of a light-edit task drift further from the answer than the input
    does (issue 34). Otherwise answers that merely copy the input cannot be chosen unless
    every answer is a copy -- a small model asked to answer or summarise often echoes its
    input, and one real answer among the samples is worth more; the copies still witness
    the agreement. ``votes`` counts the samples only.
    """
    answers = clean_samples(samples, labels)
    if source is None:
        return vote(answers)
    if copies:
        v = consensus([*answers, source.strip()])
        return Vote(v.output, v.share, vote(answers).votes)
    key = text_key(source)
    real = [a if text_key(a) != key else "" for a in answers]
    if any(real):
        return consensus(real, against=answers)
    return consensus(answers)
