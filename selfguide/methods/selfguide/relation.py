"""How a generation task's outputs relate to their inputs, learned from the demos.

A paraphrase or a light edit keeps most of its input; a summary is shorter; an answer
shares little. :func:`demo_relation` reads that from the demos alone: the envelope of the
output/input length ratio (words) and of ROUGE-L(output, input), and whether the demos'
outputs (nearly) copy their inputs. :func:`in_relation` keeps a synthetic pair inside the
envelope widened by a margin. (A looping output: ``selfguide.evaluation.metrics.repetitive``.)

Pure: strings in, numbers and masks out. It does not filter a table (the ``relation``,
``copy`` and ``repetition`` filters of :mod:`selfguide.methods.selfguide.filters` do).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from selfguide.evaluation.rouge import rouge_l, tokenize

NEAR_COPY = 0.9  # ROUGE-L at which a demo output counts as a (near) copy of its input
LIGHT_EDIT = 0.5  # a demo output sharing this much ROUGE-L with its input: a light edit


@dataclasses.dataclass(frozen=True)
class Relation:
    """The demos' output/input envelope (None bounds: too few demos to tell)."""

    ratio: tuple[float, float] | None = None
    overlap: tuple[float, float] | None = None
    copies: bool = False

    def admits_copies(self, margin: float) -> bool:
        """Whether an output equal to its input lies inside the envelope widened by
        ``margin`` (its overlap, 1.0, within ``hi + margin / 2``), or a demo copies: the
        ``copy`` filter then keeps copies (a light edit's demos make a copy a near miss,
        not noise)."""
        return self.copies or (self.overlap is not None and self.overlap[1] + margin / 2 >= 1.0)

    @property
    def edits_lightly(self) -> bool:
        """Whether a demo output keeps most of its input (ROUGE-L >= ``LIGHT_EDIT``, or a
        near copy): then "no edit" is a plausible answer, and stage 2's consensus counts the
        input itself among the candidates (:func:`~selfguide.methods.selfguide.consistency.
        vote_samples`). The same as :meth:`admits_copies` at the default margin (1)."""
        return self.copies or (self.overlap is not None and self.overlap[1] >= LIGHT_EDIT)

    def describe(self) -> str:
        if self.ratio is None or self.overlap is None:
            return "too few demos to tell how outputs relate to inputs"
        return (f"outputs are {self.ratio[0]:.2f}-{self.ratio[1]:.2f}x their input's length "
                f"and share {self.overlap[0]:.2f}-{self.overlap[1]:.2f} ROUGE-L with it"
                + ("; some copy it" if self.copies else ""))


def _words(text: str) -> int:
    return len(tokenize(text))


def demo_relation(pairs: Sequence[tuple[str, str]]) -> Relation:
    """The envelope of ``(input, output)`` demo pairs; bounds need two demos or more."""
    pairs = [(i, o) for i, o in pairs if i.strip() and o.strip()]
    overlaps = [rouge_l(o, i) for i, o in pairs]
    copies = any(x >= NEAR_COPY for x in overlaps)
    if len(pairs) < 2:
        return Relation(copies=copies)
    ratios = [_words(o) / max(1, _words(i)) for i, o in pairs]
    return Relation(ratio=(min(ratios), max(ratios)), overlap=(min(overlaps), max(overlaps)),
                    copies=copies)


def task_relation(task: Any) -> Relation:
    """:func:`demo_relation` of a task's demos (anything with ``demos`` of ``input`` and
    ``output``)."""
    return demo_relation([(d.input, d.output) for d in task.demos])


def in_relation(inputs: Sequence[str], outputs: Sequence[str], relation: Relation,
                margin: float) -> list[bool]:
    """Keep pairs inside the demos' envelope widened by ``margin``: length ratio within
    ``[lo / (1 + margin), hi * (1 + margin)]``, overlap within ``[lo - margin / 2,
    hi + margin / 2]``. Everything passes without an envelope."""
    if relation.ratio is None or relation.overlap is None:
        return [True] * len(outputs)
    r_lo, r_hi = relation.ratio[0] / (1 + margin), relation.ratio[1] * (1 + margin)
    o_lo, o_hi = relation.overlap[0] - margin / 2, relation.overlap[1] + margin / 2
    out = []
    for i, o in zip(inputs, outputs):
        if not o.strip():
            out.append(True)  # empty answers are the output_empty filter's
            continue
        ratio = _words(o) / max(1, _words(i))
        out.append(r_lo <= ratio <= r_hi and o_lo <= rouge_l(o, i) <= o_hi)
    return out


__all__ = ["LIGHT_EDIT", "NEAR_COPY", "Relation", "demo_relation", "in_relation", "task_relation"]
