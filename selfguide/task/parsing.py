"""Turn raw completions into clean inputs, answers and labels.

- :func:`parse_input`: a stage-1 completion -> the new input (strips a leading prompt
  marker such as ``Input:``, wrapping quotes, and whatever follows the input: a new
  ``Input:``/``Output:`` block, an explanation, a note; and every piece of the prompts'
  scaffolding: label lead-ins, the label list, answer lines, a dangling marker).
- :func:`parse_output`: a stage-2 sample -> the answer (marker, quotes, trailing chatter).
- :func:`normalize_label`: the one normalisation of labels and answers (Unicode NFKC,
  strip, casefold, strip edge punctuation); task loading, label mapping and the labelling
  code all compare through it. :func:`label_problem` says why a text cannot be a label
  (control or zero-width characters, nothing left after normalisation).
- :func:`canonical_label`: a text -> the declared label equal to it after
  :func:`normalize_label` (the one label normaliser: task outputs, answers, predictions).
- :func:`map_label`: an answer -> one declared label (:func:`canonical_label`, else the
  single label contained as a whole word); None when it maps to no label or to several.

Pure functions on strings. Chatty openers ("Sure, here is...") are left in place on
purpose: the noise filter drops them and records why
(``selfguide.methods.selfguide.filters``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_LEAD_MARKER = re.compile(
    r"^\s*(?:\[(?:new\s+)?(?:input|output|answer)\]|(?:new\s+|example\s+)?(?:input|output|answer)"
    r"(?:\s*\d+)?\s*[:：])\s*", re.IGNORECASE)
# Where a completion stops being the input/answer: a new block or a comment.
_TAIL = re.compile(
    r"\n\s*(?:\[?(?:new\s+)?(?:input|output|answer|explanation|note|reason|label)\]?\s*[:：]|"
    r"(?:this|the above|i hope|let me know|explanation|note)\b)"
    r"|\n\s*\n", re.IGNORECASE)
# Prompt scaffolding that must never survive into an input (issue 40): the label lead-ins
# of the stage-1 prompts ('Inputs whose answer is "negative":', and the model's variants
# 'Outputs/Examples whose answer is …') and their label list ('Possible answers: …').
# Wherever one appears, the input has ended.
_SCAFFOLD = re.compile(
    r"\b(?:inputs?|outputs?|examples?)\s+whose\s+(?:answer|output|label)\s+is\b"
    r"|\bpossible\s+answers?\s*[:：]", re.IGNORECASE)
# Scaffolding lines before the input: a lead-in or label list line, or an answer line
# followed by the input's marker ("Answer: negative" / "Input: …", the output-first layout).
_LEADING_SCAFFOLD = re.compile(
    r"^\s*(?:(?:inputs?|outputs?|examples?)\s+whose\s+(?:answer|output|label)\s+is\b[^\n]*"
    r"|possible\s+answers?\s*[:：][^\n]*"
    r"|(?:answer|output|label)\s*[:：][^\n]*(?=\n\s*\[?(?:new\s+)?input\]?\s*[:：]))\n",
    re.IGNORECASE)
# A lone task-prompt marker the completion ends on ("… a great film. Input:").
_TRAILING_MARKER = re.compile(r"\s*\[?(?:new\s+)?(?:input|output)\]?\s*[:：]\s*$",
                              re.IGNORECASE)
_QUOTES = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"), ("`", "`")]
_EDGE_PUNCT = " \t\r\n.,;:!?\"'`“”‘’«»()[]{}*_"


def _strip_quotes(text: str) -> str:
    text = text.strip()
    changed = True
    while changed and len(text) >= 2:
        changed = False
        for a, b in _QUOTES:
            if text.startswith(a) and text.endswith(b) and len(text) > len(a) + len(b) - 1:
                inner = text[len(a):-len(b)].strip()
                if inner and a not in inner:
                    text, changed = inner, True
                    break
    return text


def _cut(text: str, pattern: re.Pattern[str]) -> str:
    m = pattern.search(text)
    return text[:m.start()] if m else text


def parse_input(raw: str) -> str:
    """The new input in a stage-1 completion ("" when nothing usable is left).

    Prompt scaffolding never survives: leading lead-in/label-list/answer lines are skipped,
    and the input ends at a new ``Input:``/``Output:`` block, at a label lead-in
    (``Outputs whose answer is "negative":``) or a label list anywhere, and before a
    dangling marker."""
    text = raw.replace("\r\n", "\n").strip()
    while (m := _LEADING_SCAFFOLD.match(text)) is not None:
        text = text[m.end():]
    text = _LEAD_MARKER.sub("", text, count=1)
    text = _cut(text, _TAIL)
    text = _cut(text, _SCAFFOLD)
    text = _TRAILING_MARKER.sub("", text)
    return _strip_quotes(text).strip()


def parse_output(raw: str, *, single_line: bool = False) -> str:
    """The answer in a stage-2 sample ("" when nothing usable is left)."""
    text = raw.replace("\r\n", "\n").strip()
    text = _LEAD_MARKER.sub("", text, count=1)
    text = _cut(text, _TAIL)
    if single_line:
        text = text.strip().split("\n", 1)[0]
    return _strip_quotes(text).strip()


def normalize_label(text: str) -> str:
    """The comparison key of a label or an answer: NFKC, strip (inner runs of whitespace
    become one space), casefold, then strip edge punctuation/quotes/brackets
    ("  Positive. " and "ＰＯＳＩＴＩＶＥ" -> "positive")."""
    text = " ".join(unicodedata.normalize("NFKC", text).split())  # runs of spaces -> one
    return text.casefold().strip(_EDGE_PUNCT)


def label_problem(text: str) -> str | None:
    """Why ``text`` cannot be a label, or None. Control characters (newline, tab...) and
    invisible format characters (zero-width space, joiners, BOM, bidi marks) are refused:
    two labels that render identically must not be two labels."""
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf"):
            kind = "a control character" if cat == "Cc" else "an invisible format character"
            name = unicodedata.name(ch, "")
            return f"contains {kind} (U+{ord(ch):04X}{' ' + name if name else ''})"
    if not normalize_label(text):
        return "is only punctuation or spaces"
    return None


_norm = normalize_label


def canonical_label(text: str | None, labels: Sequence[str]) -> str | None:
    """The declared label equal to ``text`` after :func:`normalize_label`, else None.

    The one label normaliser: the task's own outputs (``TaskSpec.canonical_label``), a
    sampled answer (:func:`map_label`, rule 1) and an evaluated prediction
    (``metrics.to_label``) all go through it."""
    key = _norm(text or "")
    if not key:
        return None
    for lab in labels:
        if _norm(lab) == key:
            return lab
    return None


def map_label(answer: str, labels: Sequence[str]) -> str | None:
    """Map an answer onto the label set.

    Rules, in order: (1) equal to a label after stripping surrounding punctuation/quotes and
    casefolding ("Entailment." -> "Entailment"); (2) exactly one label occurs in the answer
    as a whole word/phrase ("The answer is entails" -> "entails"). Otherwise None: no label,
    or several labels ("entails or neutral").
    """
    key = _norm(answer)
    if not key:
        return None
    exact = canonical_label(answer, labels)
    if exact is not None:
        return exact
    found = [lab for lab in labels
             if _norm(lab) and re.search(r"(?<!\w)" + re.escape(_norm(lab)) + r"(?!\w)", key)]
    # A label that is part of a longer found label ("not entails" vs "entails") is not a
    # separate hit.
    found = [lab for lab in found
             if not any(o != lab and _norm(lab) in _norm(o) for o in found)]
    return found[0] if len(found) == 1 else None
