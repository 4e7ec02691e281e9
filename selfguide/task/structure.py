"""The structure the demos' inputs share: field markers, separators, a marked span, lines.

Many tasks give their input as a small form: ``Premise: … \\n Hypothesis: …``, ``Sentence 1:
… Sentence 2: …``, ``claim: … perspective: …``, a passage with the pronoun marked
``_his_`` followed by ``<sep>, Pronoun: his <sep>, A: … <sep>, B: …``. A synthetic input
without that form cannot be labelled meaningfully (there is no hypothesis to entail, no
options to choose from), so SELF-GUIDE's labels then follow the model's prior.

What it does: :func:`infer_template` finds what every demo input shares, in order: field
markers (a short label and a colon at a word start: ``Premise:``, ``Sentence 1:``),
separator tokens (``<sep>``, ``[SEP]``, ``|||``), a marked span (``_his_``, ``**x**``, ``[x]``)
and the line count when it is the same in every demo and above one. :class:`InputTemplate`
scores a text by the share of those parts it has (markers count in order) and gives the
fixed start every demo input opens with (``Premise:``), which stage 1 writes itself so the
model fills the slots. Demos that share nothing give an empty template: nothing changes.

Pure: strings in, a frozen dataclass and numbers out. It does not generate or filter
(stage 1 and the ``structure`` filter of ``selfguide.methods.selfguide.filters`` do).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

# A field label at a word start: 1-3 words of letters/digits, then a colon and a space/end.
_FIELD = re.compile(r"(?:^|(?<=[\s,;|>(\[]))([A-Za-z][A-Za-z0-9_-]{0,20}(?: [A-Za-z0-9_-]{1,20})"
                    r"{0,2}:)(?=\s|$)")
_SEPARATOR = re.compile(r"<[A-Za-z/][^<>\s]{0,10}>|\[[A-Z]{2,8}\]|\|{2,}|#{3,}|-{3,}")
SPANS = {"_x_": re.compile(r"(?<!_)_[^_\s][^_\n]{0,40}?_(?!_)"),
         "**x**": re.compile(r"\*\*[^*\n]{1,40}\*\*"),
         "[x]": re.compile(r"\[[^\[\]\n]{1,40}\]")}


def _parts(text: str) -> list[str]:
    """The marker tokens of ``text`` in order of appearance."""
    found = [(m.start(1), m.group(1)) for m in _FIELD.finditer(text)]
    found += [(m.start(), m.group(0)) for m in _SEPARATOR.finditer(text)]
    return [tok for _, tok in sorted(found)]


def _lcs(a: Sequence[str], b: Sequence[str]) -> list[str]:
    """The longest common subsequence of two token lists (short lists: plain DP)."""
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else \
                max(table[i + 1][j], table[i][j + 1])
    out, i, j = [], 0, 0
    while i < n and j < m:
        if a[i] == b[j]:
            out.append(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def _lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


@dataclasses.dataclass(frozen=True)
class InputTemplate:
    """What every demo input shares.

    Attributes:
        markers: Field markers and separators, in order (``("Premise:", "Hypothesis:")``).
        span: The kind of marked span every demo has (a key of :data:`SPANS`), or None.
        lines: The number of non-empty lines every demo has, when above one; else None.
        prefix: The marker every demo input starts with (stage 1 writes it), or "".
        glue: Per marker, the text the first demo has between the previous field and it
            (``" \\n "`` before ``Hypothesis:``); stage 1 writes it with the marker.
    """

    markers: tuple[str, ...] = ()
    span: str | None = None
    lines: int | None = None
    prefix: str = ""
    glue: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.markers and self.span is None and self.lines is None

    @property
    def n_parts(self) -> int:
        return len(self.markers) + (self.span is not None) + (self.lines is not None)

    def describe(self) -> str:
        """The template in a line a person reads ("Premise: … Hypothesis: …")."""
        if self.empty:
            return "no shared structure"
        bits = [" … ".join(self.markers) + " …"] if self.markers else []
        if self.span:
            bits.append(f"a marked span like {self.span}")
        if self.lines:
            bits.append(f"{self.lines} lines")
        return "; ".join(bits)

    def score(self, text: str) -> float:
        """The share of the template's parts ``text`` has (1.0 for an empty template)."""
        if self.empty:
            return 1.0
        have, pos = 0, 0
        for marker in self.markers:  # in order: each after the previous one
            at = text.find(marker, pos)
            if at >= 0:
                have, pos = have + 1, at + len(marker)
        if self.span is not None and SPANS[self.span].search(text):
            have += 1
        if self.lines is not None and _lines(text) == self.lines:
            have += 1
        return have / self.n_parts

    def matched(self, text: str) -> list[int]:
        """Where each marker ends in ``text`` when found in order (-1 once one is missing)."""
        ends, pos = [], 0
        for marker in self.markers:
            at = text.find(marker, pos) if pos >= 0 else -1
            pos = at + len(marker) if at >= 0 else -1
            ends.append(pos)
        return ends

    def field(self, text: str, index: int) -> str:
        """The text between marker ``index`` and the next one in ``text`` ("" when either is
        missing): ``field(text, 0)`` is the first field (``Premise: <this> Hypothesis:``)."""
        ends = self.matched(text)
        if index + 1 >= len(ends) or ends[index] < 0 or ends[index + 1] < 0:
            return ""
        return text[ends[index]:ends[index + 1] - len(self.markers[index + 1])].strip()

    def next_missing(self, text: str) -> int | None:
        """The index of the first marker ``text`` lacks (in order), None when it has all."""
        return next((i for i, end in enumerate(self.matched(text)) if end < 0), None)

    def open_field(self, text: str, index: int) -> str:
        """``text`` cut after the field before marker ``index`` (at its first line break
        when the glue before the marker starts a new line), then the glue and the marker:
        what stage 1 asks the model to continue."""
        ends = self.matched(text)
        last = ends[index - 1] if index > 0 else 0
        glue = self.glue[index] if index < len(self.glue) else " "
        head = text
        if "\n" in glue:
            cut = text.find("\n", max(last, 0))
            head = text if cut < 0 else text[:cut]
        return head.rstrip() + glue + self.markers[index]

    def trim(self, text: str) -> str:
        """``text`` without what follows its template: a repeated marker after the last
        one (a second ``Hypothesis:``), or lines past the demos' line count."""
        ends = self.matched(text)
        if self.markers and ends and ends[-1] >= 0:
            nxt = [text.find(m, ends[-1]) for m in self.markers]
            cut = min((x for x in nxt if x >= 0), default=-1)
            if cut >= 0:
                text = text[:cut]
        if self.lines is not None:
            kept, n = [], 0
            for line in text.split("\n"):
                n += bool(line.strip())
                if n > self.lines:
                    break
                kept.append(line)
            text = "\n".join(kept)
        return text.rstrip()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"markers": list(self.markers)}

    @classmethod
    def from_dict(cls, data: dict | None) -> InputTemplate:
        data = data if isinstance(data, dict) else {}
        return cls(markers=tuple(str(m) for m in data.get("markers") or ()),
                   span=data.get("span") if data.get("span") in SPANS else None,
                   lines=int(data["lines"]) if isinstance(data.get("lines"), int) else None,
                   prefix=str(data.get("prefix") or ""),
                   glue=tuple(str(g) for g in data.get("glue") or ()))


def infer_template(inputs: Sequence[str]) -> InputTemplate:
    """The structure every one of ``inputs`` (the demos' inputs) shares; empty with fewer
    than two inputs (one example shows no pattern)."""
    texts = [t for t in inputs if t and t.strip()]
    if len(texts) < 2:
        return InputTemplate()
    common = _parts(texts[0])
    for text in texts[1:]:
        common = _lcs(common, _parts(text))
    span = next((name for name, pat in SPANS.items()
                 if all(pat.search(t) for t in texts)), None)
    counts = {_lines(t) for t in texts}
    lines = counts.pop() if len(counts) == 1 and min(_lines(t) for t in texts) > 1 else None
    first = common[0] if common else ""
    prefix = first if first and all(t.lstrip().startswith(first) for t in texts) else ""
    return InputTemplate(markers=tuple(common), span=span, lines=lines, prefix=prefix,
                         glue=_glue(texts[0], common))


def _glue(text: str, markers: Sequence[str]) -> tuple[str, ...]:
    """Per marker, the spaces, line breaks and separators (``,;|``) right before it in
    ``text`` (" " at least); sentence punctuation stays with the field before."""
    out, pos = [], 0
    for marker in markers:
        at = text.find(marker, pos)
        if at < 0:
            out.append(" ")
            continue
        start = at
        while start > pos and (text[start - 1].isspace() or text[start - 1] in ",;|"):
            start -= 1
        out.append(text[start:at] or " ")
        pos = at + len(marker)
    return tuple(out)


def template_share(texts: Sequence[str], template: InputTemplate) -> float:
    """The share of ``texts`` that carry the whole template (1.0 when there are none)."""
    if not texts:
        return 1.0
    return sum(template.score(t) >= 1.0 for t in texts) / len(texts)


__all__ = ["InputTemplate", "SPANS", "infer_template", "template_share"]
