"""Self-consistency voting over sampled answers (SELF-GUIDE stage 2).

For each input the model samples n answers; :func:`vote` picks the most common one (ties go
to the shortest, then alphabetical, so the result is deterministic) and reports its share
of the n samples. Whether that share is high enough (``min_frequency``, paper default 0.2)
is decided by the filters, so the threshold can change without re-voting.

For classification the samples are first mapped onto the label set
(:func:`selfguide.task.parsing.map_label`), so "Entailment." and "entailment" vote together; an
answer that maps to no label votes as itself and, if it wins, is dropped by the label
filter. Empty answers do not vote but still count in the denominator. For generation
tasks, answers that copy the input only win when every sample is a copy.

Pure functions; no model calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

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


def vote_samples(samples: Sequence[str], labels: Sequence[str] = (), *,
                 source: str | None = None) -> Vote:
    """:func:`clean_samples` then :func:`vote`.

    With ``source`` (generation tasks: the input), answers that merely copy the input do
    not vote unless every answer is a copy -- a small model asked to paraphrase often
    echoes its input, and one real paraphrase among the samples is worth more. The copies
    still count in the denominator, so the share says how rare the real answer was.
    """
    answers = clean_samples(samples, labels)
    if source is not None:
        key = " ".join(source.casefold().split())
        real = [a if " ".join(a.casefold().split()) != key else "" for a in answers]
        if any(real):
            return vote(real)
    return vote(answers)
