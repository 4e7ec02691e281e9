"""Tables the studio draws from a run's files while and after a job runs.

What it does: reads the tail of an append-only JSONL file cheaply (the live synthesis
preview polls it every second), and shapes rows into small DataFrames with the columns a
person wants to see first (newest first). Text stays text: these frames are shown with
``st.dataframe`` only.

What it does not do: change files or compute filter decisions
(``selfguide.methods.selfguide.filters``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

INPUT_COLS = ("round", "origin", "target_label", "input", "passage", "instruction", "id")
ANNOT_COLS = ("input", "output", "vote_share", "votes", "id")


def tail_jsonl(path: Path, n: int = 200, *, chunk: int = 1 << 16) -> list[dict]:
    """The last ``n`` committed records of a JSONL file (torn or corrupt lines skipped)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            pos, buf = end, b""
            while pos > 0 and buf.count(b"\n") <= n:
                start = max(0, pos - chunk)
                fh.seek(start)
                buf = fh.read(pos - start) + buf
                pos = start
    except FileNotFoundError:
        return []
    lines = buf.split(b"\n")[:-1]  # after the last newline: uncommitted tail
    if pos > 0:
        lines = lines[1:]  # first piece may be a partial line
    out = []
    for raw in lines[-n:]:
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def count_rows(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.endswith(b"\n") and line.strip())
    except FileNotFoundError:
        return 0


def _shape(records: list[dict], preferred: tuple[str, ...]) -> pd.DataFrame:
    if not records:
        return pd.DataFrame(columns=list(preferred[:2]))
    df = pd.DataFrame(records[::-1])  # newest first
    cols = [c for c in preferred if c in df.columns]
    df = df[cols] if cols else df
    for c in df.columns:
        if df[c].map(lambda v: isinstance(v, (list, dict))).any():
            df[c] = df[c].map(lambda v: json.dumps(v, ensure_ascii=False)
                              if isinstance(v, (list, dict)) else v)
    return df.reset_index(drop=True)


def input_rows(records: list[dict]) -> pd.DataFrame:
    """Generated inputs, newest first: round, origin (``given`` = the user's own), target
    label, input, the passage it was written on (documents), id."""
    return _shape(records, INPUT_COLS)


def annotation_rows(records: list[dict], labels: tuple[str, ...] = (),
                    inputs: dict[str, str] | None = None) -> pd.DataFrame:
    """Annotated inputs, newest first: the input text (from ``inputs``, ``{id: input}``),
    the voted answer, its vote share, the samples, the id."""
    from selfguide.methods.selfguide.consistency import vote_samples

    rows = []
    for r in records:
        samples = [str(x) for x in (r.get("samples") or [])]
        v = vote_samples(samples, labels)
        rows.append({"id": r.get("id", ""), "input": (inputs or {}).get(str(r.get("id")), ""),
                     "output": v.output,
                     "vote_share": round(float(v.share), 2), "votes": v.votes})
    return _shape(rows, ANNOT_COLS)


def selfinstruct_rows(rounds: list[dict]) -> pd.DataFrame:
    """Self-Instruct rounds, newest first: each new instruction, accepted or not, and its
    ROUGE-L to the nearest pool instruction."""
    rows = []
    for rec in reversed(rounds):
        for c in reversed(rec.get("instructions") or []):
            rows.append({"round": rec.get("round"), "accepted": bool(c.get("accepted")),
                         "instruction": str(c.get("instruction", "")),
                         "nearest_score": round(float(c.get("nearest_score") or 0.0), 3),
                         "instances": len(c.get("instances") or [])})
    return pd.DataFrame(rows, columns=["round", "accepted", "instruction", "nearest_score",
                                       "instances"])
