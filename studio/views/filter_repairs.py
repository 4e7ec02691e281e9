"""Row repair on the Filter page: corrections of a candidate's output or label made in the
candidates table (one cell, or a label for many rows at once), stored as overrides.

What it does: shows the candidates with their repaired values and an ``edited`` marker
(:func:`decorate`), tells which cells the user changed in the table
(:func:`table_changes`), and saves corrections through the library's groundwork
(``selfguide.methods.candidates.repair``: who, when and the original value beside the fix in
``overrides.json``; the raw candidates never change). A corrected row is also kept (decision
``keep``) unless the user drops it, so that the correction reaches the dataset; re-filtering
and ``selfguide filter`` / ``export`` honour it.

What it does not do: filter rows or write the dataset (``studio.views.filter_rows`` and the method's
``refilter`` do).
"""

from __future__ import annotations

import getpass
from pathlib import Path

import pandas as pd

from selfguide.methods import candidates

EDITABLE = ("output", "label")  # the fields a repair may correct (RunDir.REPAIR_FIELDS)


def who() -> str:
    """The ``by`` of a repair made in the studio."""
    try:
        return f"studio:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "studio"


def decorate(df: pd.DataFrame, repairs: dict[str, dict], *, label_is_output: bool = False
             ) -> pd.DataFrame:
    """``df`` with the repaired values shown and an ``edited`` column (True for repaired
    rows), for the table and the downloads."""
    out = candidates.apply_repairs(df, repairs, label_is_output=label_is_output)
    if out is df:
        out = df.copy()
    out["edited"] = out["id"].astype(str).isin(set(repairs))
    return out


def label_share(df: pd.DataFrame, task) -> list[float | None]:
    """Per row, the share of the samples that voted for the row's *label* (the label the
    filters assigned: with the target or calibrated strategy it need not be the vote
    winner, whose share is ``vote_share``)."""
    import json

    out: list[float | None] = []
    for label, votes in zip(df.get("label", [""] * len(df)), df.get("votes", ["{}"] * len(df))):
        try:
            v = json.loads(votes) if isinstance(votes, str) else dict(votes or {})
        except (TypeError, ValueError):
            v = {}
        total = sum(int(c) for c in v.values()) if v else 0
        if not label or not total:
            out.append(None)
            continue
        canon = (lambda k: task.canonical_label(k)) if task is not None else (lambda k: k)
        out.append(round(sum(int(c) for k, c in v.items() if canon(k) == label) / total, 2))
    return out


def table_changes(view: pd.DataFrame, edited: pd.DataFrame) -> dict[str, dict]:
    """``{id: {"output"?: new, "label"?: new}}`` for the cells the user changed in the
    editor (the view already shows repaired values, so a change is a new correction)."""
    out: dict[str, dict] = {}
    if view.empty:
        return out
    for field in EDITABLE:
        if field not in view.columns or field not in edited.columns:
            continue
        for ident, before, after in zip(view["id"], view[field], edited[field]):
            after = "" if after is None or (isinstance(after, float) and pd.isna(after)) \
                else str(after)
            if after != before:
                out.setdefault(str(ident), {})[field] = after
    return out


def save(run_dir: Path, df: pd.DataFrame, fixes: dict[str, dict], overrides: dict
         ) -> int:
    """Store ``fixes`` (``{id: {field: value}}``) as repairs of the rows of ``df`` (the
    generated table, for the original values), keeping any earlier fix of the other field,
    and keep every fixed row the user has not dropped. Returns how many rows changed."""
    repairs = candidates.read_repairs(run_dir)
    for rid, fix in fixes.items():
        merged = {f: repairs.get(rid, {}).get(f) for f in EDITABLE}
        merged.update(fix)
        candidates.repair(run_dir, df, rid, by=who(), output=merged.get("output"),
                          label=merged.get("label"))
    keep = {rid: True for rid in fixes if overrides.get(rid) is not False}
    if keep:
        candidates.write_overrides(run_dir, {**overrides, **keep})
    return len(fixes)


def undo(run_dir: Path, ids: list[str]) -> None:
    """Remove the repairs of ``ids`` (back to the generated values; decisions stay)."""
    from selfguide.runs.rundir import RunDir

    for rid in ids:
        RunDir(run_dir).write_repair(str(rid), original={})
