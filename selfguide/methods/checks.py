"""Text checks shared by every method's filters: pure functions over strings.

What it does: the few checks that SELF-GUIDE's and Self-Instruct's filters both use (an
empty text, a word count, a duplicate key), so that neither method imports the other's
filters.

What it does not do: hold thresholds or decide a row's fate (each method's ``filters``).
"""

from __future__ import annotations

from collections.abc import Sequence


def not_empty(texts: Sequence[str]) -> list[bool]:
    """Drop empty/whitespace-only texts (nothing to learn from)."""
    return [bool(t and t.strip()) for t in texts]


def word_count(text: str) -> int:
    return len(text.split())


def text_key(text: str) -> str:
    """Case- and whitespace-insensitive form of a text (exact-duplicate key)."""
    return " ".join(text.casefold().split())
