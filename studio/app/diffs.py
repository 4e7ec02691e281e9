"""Before/after comparison views: example status, filters, and a word-level diff as data.

What it does: labels each prediction row improved / regressed / changed / same from the
scores ``selfguide eval`` wrote, and splits two answers into aligned word chunks
(``difflib``) returned as rows ``{change, before, after}`` so the page can colour table
cells. Model text is never turned into markup here or anywhere in the studio.

What it does not do: score answers (``selfguide.evaluation.metrics``) or run models.
"""

from __future__ import annotations

import difflib

import pandas as pd

VIEWS = ("all", "changed", "improved", "regressed")
COLOURS = {"same": "", "removed": "background-color: #fde0dc", "added":
           "background-color: #d7f5dd", "replaced": "background-color: #fff3c4"}


def status_of(row: dict) -> str:
    b, a = row.get("score_before"), row.get("score_after")
    if isinstance(b, (int, float)) and isinstance(a, (int, float)):
        if a > b:
            return "improved"
        if a < b:
            return "regressed"
    if row.get("changed"):
        return "changed"
    return "same"


def examples_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per held-out example with before/after answers, scores and status."""
    cols = ["status", "input", "reference", "before", "after", "score_before", "score_after",
            "id"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame([{**r, "status": status_of(r)} for r in rows])
    for c in cols:
        if c not in df.columns:
            df[c] = None
    for c in ("input", "reference", "before", "after", "id"):
        df[c] = df[c].map(lambda v: "" if v is None else str(v))
    return df[cols]


def select(df: pd.DataFrame, view: str) -> pd.DataFrame:
    """Rows for a view: all, changed (any different answer), improved, regressed."""
    if view == "all" or df.empty:
        return df
    if view == "changed":
        return df[df["status"] != "same"]
    return df[df["status"] == view]


def word_diff(before: str, after: str) -> list[dict]:
    """Aligned chunks ``{change, before, after}``; change in same/removed/added/replaced."""
    a, b = (before or "").split(), (after or "").split()
    out = []
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        change = {"equal": "same", "delete": "removed", "insert": "added",
                  "replace": "replaced"}[op]
        out.append({"change": change, "before": " ".join(a[i1:i2]),
                    "after": " ".join(b[j1:j2])})
    return out


def diff_frame(before: str, after: str):
    """The word diff as a pandas ``Styler`` (cell colours only; text stays text)."""
    df = pd.DataFrame(word_diff(before, after), columns=["change", "before", "after"])
    return df.style.apply(lambda row: [COLOURS.get(row["change"], "")] * len(row), axis=1)


def confusion_frame(confusion: dict | None) -> pd.DataFrame | None:
    """``{reference: {predicted: n}}`` as a table (rows: reference, columns: predicted)."""
    if not isinstance(confusion, dict) or not confusion:
        return None
    df = pd.DataFrame(confusion).T.fillna(0).astype(int)
    df.index.name = "reference ↓ / predicted →"
    return df


def per_label_frame(metrics: dict) -> pd.DataFrame | None:
    """Accuracy among each reference label's examples, before and after (classification)."""
    after = metrics.get("per_label_after")
    if not isinstance(after, dict) or not after:
        return None
    before = metrics.get("per_label_before") or {}
    df = pd.DataFrame({"before": [before.get(k) for k in after],
                       "after": [after[k] for k in after]}, index=list(after))
    df.index.name = "label"
    return df.astype(float)
