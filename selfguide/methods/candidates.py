"""The candidates table every method produces: its schema, its file and its funnel.

What it does: names the columns every method's table has (:data:`COLUMNS`; a method adds
its own after them), reads and writes ``candidates.parquet`` (atomically, via
:mod:`selfguide.runs.store`), reads and writes the manual decisions and repairs
(``overrides.json``, through :class:`~selfguide.runs.rundir.RunDir`; a repair corrects a row's
output or label for the dataset, never the raw candidates), and counts the funnel (rows
left after each filter).

What it does not do: decide what a row is or whether it passes (each method's ``table`` and
``filters``), or build the training set (:mod:`selfguide.runs.dataset`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from selfguide.errors import CorruptFile
from selfguide.runs.rundir import as_run

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

# The columns every method's table starts with (DESIGN.md); ``f_<filter>`` masks,
# ``drop_reason`` ("" = kept) and ``kept`` come from the method's filters.
COLUMNS = ("id", "method", "round", "prompt_id", "target_label", "raw", "input", "samples",
           "votes", "vote_share", "output")
LIST_COLUMNS = ("samples", "label_scores", "answer_scores")  # parquet gives arrays back


def write(run: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write ``candidates.parquet`` atomically (temp file + rename)."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    run = as_run(run)
    run.write_file(run.candidates_file, buf.getvalue())


def read(run: str | os.PathLike) -> pd.DataFrame | None:
    """``candidates.parquet`` (list columns as lists), or ``None`` when there is none;
    ``CorruptFile`` when it cannot be read."""
    import pandas as pd

    path = as_run(run).candidates_file
    if not path.is_file():
        return None
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise CorruptFile(f"{path} cannot be read ({exc}).",
                          hint="Delete it; 'selfguide filter' rebuilds it.") from exc
    for col in LIST_COLUMNS:
        if col in df:
            df[col] = [None if v is None else list(v) for v in df[col]]
    return df


def unique(rows: list[dict]) -> list[dict]:
    """The first row of every ``id`` (a resumed stage may have appended a row twice)."""
    seen, out = set(), []
    for r in rows:
        if r.get("id") not in seen:
            seen.add(r.get("id"))
            out.append(r)
    return out


def read_overrides(run: str | os.PathLike) -> dict[str, bool]:
    """Manual keep/drop decisions ``{candidate_id: keep}`` (see
    :meth:`RunDir.read_overrides`)."""
    return as_run(run).read_overrides()


def write_overrides(run: str | os.PathLike, overrides: dict[str, bool | None]
                    ) -> dict[str, bool]:
    """Save ``{id: keep}``; ``None`` removes a decision (back to the filters)."""
    return as_run(run).write_overrides(overrides)


def read_repairs(run: str | os.PathLike) -> dict[str, dict]:
    """Rows corrected by hand (see :meth:`RunDir.read_repairs`)."""
    return as_run(run).read_repairs()


def repair(run: str | os.PathLike, df: pd.DataFrame, candidate_id: str, *, by: str = "",
           output: str | None = None, label: str | None = None) -> dict | None:
    """Correct one row's ``output`` and/or ``label`` (both None: undo the repair). The
    original values are taken from the candidates table ``df`` and stored beside the fix;
    the table and the raw stage files are not changed."""
    from selfguide.errors import DatasetError

    rows = df[df["id"].astype(str) == str(candidate_id)] if len(df) else df
    if not len(rows):
        raise DatasetError(f"No candidate {candidate_id!r} in this run.")
    task = as_run(run).read_task()
    if label is not None and task is not None and task.is_classification:
        canon = task.canonical_label(label)
        if canon is None:
            raise DatasetError(f"{label!r} is not one of the labels ({', '.join(task.labels)}).")
        label = canon
    row = rows.iloc[0]
    original = {f: (None if f not in row.index else str(row[f] or "")) for f in
                ("output", "label")}
    return as_run(run).write_repair(str(candidate_id), original=original, by=by,
                                    output=output, label=label)


def apply_repairs(df: pd.DataFrame, repairs: dict[str, dict], *,
                  label_is_output: bool = False) -> pd.DataFrame:
    """A copy of ``df`` with the repaired ``output``/``label`` values (for the dataset; the
    stored table keeps the generated ones). ``label_is_output``: a method whose label is
    its output (Self-Instruct) takes a repaired label as the output too."""
    if not repairs or not len(df):
        return df
    out = df.copy()
    ids = out["id"].astype(str)
    for rid, fix in repairs.items():
        mask = ids == rid
        if not mask.any():
            continue
        label = fix.get("label")
        output = fix.get("output", label if label_is_output else None)
        if output is not None and "output" in out.columns:
            out.loc[mask, "output"] = output
        if label is not None and "label" in out.columns:
            out.loc[mask, "label"] = label
    return out


def funnel(df: pd.DataFrame, order: Sequence[str]) -> list[dict]:
    """Counts through the filters in ``order``: ``[{"step", "remaining", "dropped"}, ...]``
    (``generated`` = all rows; a row counts at its first failing filter, ``drop_reason``)."""
    reasons = df["drop_reason"].tolist() if len(df) else []
    remaining = len(reasons)
    rows = [{"step": "generated", "remaining": remaining, "dropped": 0}]
    for name in order:
        d = reasons.count(name)
        remaining -= d
        rows.append({"step": name, "remaining": remaining, "dropped": d})
    return rows


__all__ = ["COLUMNS", "apply_repairs", "funnel", "read", "read_overrides", "read_repairs",
           "repair", "unique", "write", "write_overrides"]


def plain(value: object) -> object:
    """A cell as plain data: numpy scalars -> Python numbers/strings, arrays/tuples -> lists
    (recursively), missing values (None, NaN) -> None."""
    import numpy as np

    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """The candidates table as a CSV a spreadsheet or pandas reads back as written: numbers
    stay numbers, list and dict cells are JSON (``["negative", "positive"]``,
    ``[-2.38, -0.4]``), missing values are empty cells; never a Python repr such as
    ``[np.float64(-2.38)]`` or a ``None`` label."""
    return plain_frame(df).to_csv(index=False).encode("utf-8")


def plain_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with plain cells (:func:`to_csv_bytes`): numbers, strings, JSON lists."""
    import json

    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            cells = [plain(v) for v in out[col]]
            if any(isinstance(v, (list, dict)) for v in cells):
                out[col] = [None if v is None else json.dumps(v, ensure_ascii=False)
                            for v in cells]
            else:
                out[col] = cells
    return out
