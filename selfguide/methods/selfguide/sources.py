"""The user's own unlabeled inputs as a SELF-GUIDE source (issue 36).

What it does: :func:`read_given` reads a file of unlabeled inputs -- CSV, JSONL, JSON (a
list), TXT (one input per line), Parquet, or a Hugging Face dataset folder saved with
``save_to_disk`` (when ``datasets`` is installed) -- picks the column (``input``, then
``text``, then a file's only column, else the one named), and returns a
:class:`GivenInputs` with the texts, their source row numbers (counted from 1) and the
file's content hash, which is part of the run's settings (a changed file is another run).
:func:`save_given` copies them into the run folder (``given_inputs.jsonl``, atomically) and
adds them to ``inputs.jsonl`` as rows of origin ``given`` (once: a resumed run finds them);
:func:`given_rows` reads them back. ``mix``: ``only`` = the given inputs replace stage 1;
``fill`` = given first, generated rounds top up to the preset's size.

Errors are ``DatasetError`` naming the file, the column and the row: a missing or empty
file, a binary or non-UTF-8 file, a wrong column, a row longer than :data:`MAX_CHARS`.
It does not label, filter or generate anything.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from selfguide.errors import DatasetError
from selfguide.runs.rundir import as_run

MIXES = ("fill", "only")
SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json", ".txt", ".parquet")
MAX_BYTES = 50 * 2**20     # the file (or a dataset folder's files together)
MAX_CHARS = 20_000         # one input: longer rows are almost always a wrong column or file
MAX_ROWS = 100_000
GIVEN_FILE = "given_inputs.jsonl"
PREFERRED = ("input", "text")


@dataclasses.dataclass(frozen=True)
class GivenInputs:
    """Texts read from the user's file: ``rows[i]`` came from source row ``numbers[i]``."""

    path: str
    column: str
    sha256: str
    rows: tuple[str, ...]
    numbers: tuple[int, ...]
    skipped: int = 0  # blank rows

    def settings(self, mix: str) -> dict:
        """What config.json records (the hash, not the path, decides a resume)."""
        return {"file": self.path, "column": self.column, "mix": mix, "sha256": self.sha256,
                "rows": len(self.rows), "skipped_blank": self.skipped}


# --------------------------------------------------------------------------- reading

def _fail(path: Path, message: str, hint: str = "") -> DatasetError:
    return DatasetError(f"Inputs file {path}: {message}", hint=hint or None)


def _check_size(path: Path) -> int:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    size = sum(p.stat().st_size for p in files)
    if size > MAX_BYTES:
        raise _fail(path, f"{size / 2**20:.0f} MB is more than {MAX_BYTES // 2**20} MB.",
                    "Keep a sample of the rows (a few thousand are plenty).")
    return size


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(str(p.relative_to(path)).encode() if path.is_dir() else b"")
        h.update(p.read_bytes())
    return h.hexdigest()


def _text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:65536]:
        raise _fail(path, "looks binary (it holds NUL bytes).",
                    "Give a CSV, JSONL, TXT or Parquet file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(path, f"is not UTF-8 (byte {exc.start}).",
                    "Save it as UTF-8 and try again.") from exc


def _records(path: Path) -> tuple[list[dict], list[str]]:
    """``(rows as dicts, column names)`` of any supported file or dataset folder."""
    if path.is_dir():
        return _dataset_records(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _parquet_records(path)
    if suffix not in SUFFIXES:
        raise _fail(path, f"unsupported type {suffix or '(none)'!r}.",
                    "Use .csv, .jsonl, .json, .txt, .parquet, or a folder saved with "
                    "datasets' save_to_disk.")
    text = _text(path)
    if suffix == ".txt":
        return [{"text": line} for line in text.splitlines()], ["text"]
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        try:
            rows = list(reader)
        except csv.Error as exc:
            raise _fail(path, f"CSV error: {exc}.") from exc
        return rows, list(reader.fieldnames or [])
    return _json_records(path, text, suffix)


def _json_records(path: Path, text: str, suffix: str) -> tuple[list[dict], list[str]]:
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(path, f"invalid JSON at line {exc.lineno}: {exc.msg}.") from exc
        if not isinstance(data, list):
            raise _fail(path, "a .json inputs file must be a list (of texts or objects).")
        raw = data
    else:
        raw = []
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                raw.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise _fail(path, f"line {i} is not JSON ({exc.msg}).") from exc
    rows = [r if isinstance(r, dict) else {"text": r} for r in raw]
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return rows, cols


def _parquet_records(path: Path) -> tuple[list[dict], list[str]]:
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise _fail(path, f"cannot be read as Parquet ({exc}).") from exc
    return df.to_dict("records"), [str(c) for c in df.columns]


def _dataset_records(path: Path) -> tuple[list[dict], list[str]]:
    """A folder written by ``Dataset.save_to_disk`` (a DatasetDict: its ``train`` split,
    else its first)."""
    try:
        import datasets
    except ImportError as exc:
        raise _fail(path, "is a folder; reading a saved Hugging Face dataset needs the "
                          "'datasets' package.", "pip install datasets, or export the "
                          "column to CSV/JSONL.") from exc
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError and others
        raise _fail(path, f"is not a dataset saved with save_to_disk ({exc}).") from exc
    if isinstance(ds, datasets.DatasetDict):
        split = "train" if "train" in ds else next(iter(ds), None)
        if split is None:
            raise _fail(path, "the dataset has no split.")
        ds = ds[split]
    return [dict(r) for r in ds], list(ds.column_names)


def pick_column(path: Path, columns: list[str], column: str | None) -> str:
    """The column to read: the one named, else ``input``, ``text`` or the only one."""
    if column:
        if column not in columns:
            raise _fail(path, f"has no column {column!r}.",
                        f"Its columns: {', '.join(columns) or '(none)'}; pass --column.")
        return column
    for name in PREFERRED:
        if name in columns:
            return name
    if len(columns) == 1:
        return columns[0]
    raise _fail(path, f"has {len(columns)} columns and none is called 'input' or 'text'.",
                f"Choose one with --column: {', '.join(columns) or '(none)'}.")


def guess_column(rows: list[dict], columns: list[str]) -> str:
    """The column a picker starts on: ``input``, ``text``, else the one whose values are the
    longest texts (an id or a label column is short)."""
    for name in PREFERRED:
        if name in columns:
            return name

    def mean_len(col: str) -> float:
        vals = [r.get(col) for r in rows[:200]]
        return sum(len(v) for v in vals if isinstance(v, str)) / max(1, len(vals))

    return max(columns, key=mean_len) if columns else ""


def _cell(path: Path, value: Any, row: int, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (dict, list)):
        raise _fail(path, f"row {row}, column {column!r} holds a {type(value).__name__}, "
                          f"not text.", "Pick the column that holds the input text.")
    text = str(value).strip()
    if len(text) > MAX_CHARS:
        raise _fail(path, f"row {row}, column {column!r} is {len(text):,} characters long "
                          f"(at most {MAX_CHARS:,}).",
                    "Is this the right column? Trim or split the long rows.")
    return text


def read_table(path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """``(rows, columns)`` of an inputs file, for a preview and its column picker."""
    p = Path(path).expanduser()
    if not p.exists():
        raise _fail(p, "not found.")
    _check_size(p)
    rows, cols = _records(p)
    if not rows:
        raise _fail(p, "is empty.", "Give a file with one input per row.")
    if len(rows) > MAX_ROWS:
        raise _fail(p, f"has {len(rows):,} rows (at most {MAX_ROWS:,}).",
                    "Keep a sample of the rows.")
    return rows, cols


def read_given(path: str | os.PathLike, column: str | None = None) -> GivenInputs:
    """The non-blank texts of ``column`` in the file (see the module docstring)."""
    p = Path(path).expanduser()
    rows, cols = read_table(p)
    col = pick_column(p, cols, column)
    texts, numbers = [], []
    for i, r in enumerate(rows, start=1):
        text = _cell(p, r.get(col), i, col)
        if text:
            texts.append(text)
            numbers.append(i)
    if not texts:
        raise _fail(p, f"column {col!r} has no non-blank row.")
    return GivenInputs(path=str(p.resolve()), column=col, sha256=_hash(p), rows=tuple(texts),
                       numbers=tuple(numbers), skipped=len(rows) - len(texts))


# --------------------------------------------------------------------------- the run folder

def given_id(number: int) -> str:
    return f"given-{number:06d}"


def given_file(run_dir: str | os.PathLike) -> Path:
    return as_run(run_dir).path / GIVEN_FILE


def save_given(run_dir: str | os.PathLike, given: GivenInputs) -> list[dict]:
    """Copy the inputs into the run (atomically) and into ``inputs.jsonl`` as ``given`` rows
    (those already there are not added again); returns the given rows."""
    run = as_run(run_dir)
    rows = [{"id": given_id(n), "method": "selfguide", "round": -1, "prompt_id": k,
             "target_label": "", "raw": text, "input": text, "origin": "given",
             "source_row": n} for k, (n, text) in enumerate(zip(given.numbers, given.rows))]
    copy = "".join(json.dumps({"row": n, "input": t}, ensure_ascii=False) + "\n"
                   for n, t in zip(given.numbers, given.rows))
    run.write_file(given_file(run), copy)
    have = {r.get("id") for r in run.read_log(run.inputs_file)} \
        if run.inputs_file.is_file() else set()
    new = [r for r in rows if r["id"] not in have]
    if new:
        run.append_log(run.inputs_file, new)
    return rows


def given_rows(rows: list[dict]) -> list[dict]:
    """The ``given`` rows among ``inputs.jsonl``'s, in source order."""
    return sorted((r for r in rows if r.get("origin") == "given"),
                  key=lambda r: r["prompt_id"])


def generated_rows(rows: list[dict]) -> list[dict]:
    """The rows stage 1 wrote (old runs have no ``origin``: all generated)."""
    return [r for r in rows if r.get("origin") != "given"]


__all__ = ["GIVEN_FILE", "MIXES", "GivenInputs", "generated_rows", "given_file", "given_id",
           "given_rows", "guess_column", "pick_column", "read_given", "read_table",
           "save_given"]
