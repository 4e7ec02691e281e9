"""Task files: our own JSON/YAML, Natural Instructions V2, CSV/JSONL rows -> a TaskSpec.

Loaders (:func:`load_task` for paths, :func:`parse_task_bytes` for uploads):

- our own JSON or YAML task file (the schema in :mod:`selfguide.task.spec`);
- an official Natural Instructions V2 task file (``Definition``, ``Positive Examples``,
  ``Instances``; the ``Labels``/``Metric`` hints are honoured, otherwise classification is
  inferred when the outputs form a small repeated label set);
- a CSV or JSONL file of ``input``,``output`` rows (optional columns ``instruction`` and
  ``split`` = ``demo``|``test``; without ``split``, up to 10 rows are all demos, more rows
  give 3 demos and the rest as test rows).

Every problem raises :class:`~selfguide.errors.TaskError` naming the field, line or byte
offset. This module reads and converts; validation is :func:`selfguide.task.spec.validate_task`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from selfguide.errors import TaskError
from selfguide.task.parsing import normalize_label
from selfguide.task.spec import (
    MAX_FILE_BYTES,
    TaskSpec,
    TestExample,
    as_list,
    check_text,
    parse_example,
    parse_metric,
    task_from_dict,
    validate_task,
)

# --------------------------------------------------------------------------- NIv2

def infer_labels(outputs: list[str], *, max_labels: int = 10) -> tuple[str, ...]:
    """Labels when ``outputs`` form a small repeated set (each seen twice or more), else ()."""
    counts: dict[str, int] = {}
    canon: dict[str, str] = {}
    for o in outputs:
        k = normalize_label(o)
        counts[k] = counts.get(k, 0) + 1
        canon.setdefault(k, o.strip())
    if not counts or len(counts) < 2 or len(counts) > max_labels:
        return ()
    if min(counts.values()) < 2 or len(counts) > 0.2 * len(outputs):
        return ()
    return tuple(canon[k] for k in sorted(counts, key=lambda k: (-counts[k], k)))


def task_from_niv2(d: dict, *, name: str = "task", source: str = "") -> TaskSpec:
    """An official Natural Instructions V2 task file -> TaskSpec (``Instances`` -> test)."""
    definition = d.get("Definition")
    if isinstance(definition, list):
        definition = definition[0] if definition else ""
    instruction = check_text(definition if definition is not None else "", "Definition")
    pos = as_list(d.get("Positive Examples"), "Positive Examples")
    demos = tuple(parse_example({k: v for k, v in x.items() if k != "explanation"}
                           if isinstance(x, dict) else x, f"Positive example {i + 1}", test=False)
                  for i, x in enumerate(pos))
    tests = tuple(parse_example(x, f"Instance {i + 1}", test=True)
                  for i, x in enumerate(as_list(d.get("Instances") or [], "Instances")))
    labels = d.get("Labels")
    if labels is not None:
        labels = tuple(check_text(x, f"Label {i + 1}") for i, x in
                       enumerate(as_list(labels, "Labels")))
    else:
        labels = infer_labels([t.outputs[0] for t in tests] + [x.output for x in demos])
    task_type = "classification" if labels else "generation"
    metric = parse_metric(d["Metric"], "Metric") if d.get("Metric") else (
        "exact_match" if labels else "rouge_l")
    task = TaskSpec(name=name, instruction=instruction.strip(), demos=demos,
                    task_type=task_type, labels=labels, metric=metric, test=tests,
                    source=source)
    return validate_task(task)


# --------------------------------------------------------------------------- rows (CSV/JSONL)

def csv_columns_hint(fieldnames: list[str]) -> str:
    """What to tell someone whose CSV header lacks ``input``/``output``."""
    head = ",".join(str(f) for f in fieldnames)[:80]
    for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        if sep in head:
            return (f"The header {head!r} looks separated by {name}; selfguide reads "
                    "comma-separated files. Save it with commas (or as JSONL).")
    return (f"The first line is read as the header ({head!r}); it must name the columns, "
            "e.g. 'input,output' (optional: instruction, split).")


def task_from_rows(rows: list[dict], *, name: str, source: str,
                   instruction: str | None = None, where: str = "row") -> TaskSpec:
    """Rows of ``input``, ``output`` (+ optional ``instruction``, ``split``) -> TaskSpec."""
    if not rows:
        raise TaskError(f"{source or 'The file'} has no rows.",
                        hint="Add rows with 'input' and 'output' columns.")
    demos, tests = [], []
    has_split = any("split" in r for r in rows)
    for i, r in enumerate(rows):
        line = r.pop("__line__", i + 1)
        for col in ("input", "output"):
            if col not in r or r[col] is None:
                cols = [k for k in r if k != "__line__"]
                raise TaskError(f"{source or 'The file'}, {where} {line}: column '{col}' is "
                                "missing.", hint=csv_columns_hint(cols) if col not in r
                                and not source.lower().endswith(".jsonl") else None)
        if instruction is None and isinstance(r.get("instruction"), str) and \
                r["instruction"].strip():
            instruction = r["instruction"]
        split = str(r.get("split") or "demo").strip().lower()
        if split not in ("demo", "test", "train", "example"):
            raise TaskError(f"{where} {line}: split {split!r} must be 'demo' or 'test'.")
        target = tests if split == "test" else demos
        ex = parse_example({"input": r["input"], "output": r["output"]}, f"{where} {line}",
                      test=split == "test")
        target.append(ex)
    if not has_split and len(demos) > 10:
        rest = demos[3:]
        demos = demos[:3]
        tests = [TestExample(x.input, (x.output,), f"{name}-{i}") for i, x in enumerate(rest)]
    if not instruction:
        raise TaskError(f"{source or 'The file'} has no instruction.",
                        hint="Add an 'instruction' column (first non-empty value is used) or "
                             "pass the instruction separately.")
    outs = [x.output for x in demos] + [t.outputs[0] for t in tests]
    labels = infer_labels(outs)
    task = TaskSpec(name=name, instruction=instruction.strip(), demos=tuple(demos),
                    task_type="classification" if labels else "generation", labels=labels,
                    metric="exact_match" if labels else "rouge_l", test=tuple(tests),
                    source=source)
    return validate_task(task)


# --------------------------------------------------------------------------- bytes -> task

def decode_utf8(data: bytes, filename: str = "file") -> str:
    """UTF-8 text of ``data`` (a UTF-8 BOM is dropped, CRLF kept); TaskError otherwise."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TaskError(f"{filename} looks like UTF-16 (byte order mark at offset 0); the file "
                        f"must be UTF-8.", hint="Save it again as UTF-8.")
    if b"\x00" in data:
        nul = data.index(b"\x00")
        raise TaskError(f"{filename} contains a NUL byte at byte offset {nul}; the "
                        f"file must be UTF-8 text.", hint="Is this a binary file?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        off = exc.start
        raise TaskError(f"{filename} is not UTF-8: invalid byte 0x{data[off]:02x} at byte offset "
                        f"{off} ({exc.reason}); the file must be UTF-8.",
                        hint="Save it again as UTF-8 (for example from a text editor's "
                             "'Save as' dialog).") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a task file")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _json_loads(text: str, filename: str, line_offset: int = 0) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates,
                          parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{filename}: invalid JSON at line {exc.lineno + line_offset}, column "
                        f"{exc.colno}: {exc.msg}.") from None
    except ValueError as exc:  # our hooks: duplicate keys, NaN/Infinity
        raise TaskError(f"{filename}{f' line {line_offset + 1}' if line_offset else ''}: "
                        f"{exc}.") from None
    except RecursionError:
        raise TaskError(f"{filename}: JSON nested too deeply.") from None


def _rows_jsonl(text: str, filename: str) -> list[dict]:
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rec = _json_loads(line, filename, line_offset=i - 1)
        if not isinstance(rec, dict):
            raise TaskError(f"{filename}: line {i} must be a JSON object with 'input' and "
                            f"'output'.")
        rec["__line__"] = i
        rows.append(rec)
    return rows


def _rows_csv(text: str, filename: str) -> list[dict]:
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise TaskError(f"{filename} is empty.")
        rows = []
        for rec in reader:
            if None in rec:
                raise TaskError(f"{filename}: line {reader.line_num} has more fields than the "
                                f"header.")
            rec = {k.strip().lower(): v for k, v in rec.items() if k is not None}
            rec["__line__"] = reader.line_num
            rows.append(rec)
    except csv.Error as exc:
        raise TaskError(f"{filename}: CSV error: {exc}.") from None
    return rows


def _from_object(obj: Any, name: str, filename: str) -> TaskSpec:
    if isinstance(obj, dict) and ("Definition" in obj or "Positive Examples" in obj):
        return task_from_niv2(obj, name=name, source=filename)
    return task_from_dict(obj, default_name=name, source=filename)


def parse_task_bytes(data: bytes, filename: str, *, instruction: str | None = None) -> TaskSpec:
    """Parse an uploaded task file; the format is picked from the extension (or sniffed).

    Never raises anything but ``TaskError`` for bad content.
    """
    if len(data) > MAX_FILE_BYTES:
        raise TaskError(f"{filename} is {len(data) / 1e6:.0f} MB; the limit is "
                        f"{MAX_FILE_BYTES // 1024 // 1024} MB.")
    text = decode_utf8(data, filename)
    if not text.strip():
        raise TaskError(f"{filename} is empty.")
    stem = Path(filename).stem or "task"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "task"
    ext = Path(filename).suffix.lower()
    try:
        if ext == ".jsonl":
            return task_from_rows(_rows_jsonl(text, filename), name=name, source=filename,
                                  instruction=instruction, where="line")
        if ext == ".csv":
            return task_from_rows(_rows_csv(text, filename), name=name, source=filename,
                                  instruction=instruction, where="line")
        if ext in (".yaml", ".yml"):
            return _from_object(_yaml_loads(text, filename), name, filename)
        if ext == ".json" or text.lstrip().startswith(("{", "[")):
            return _from_object(_json_loads(text, filename), name, filename)
        return task_from_rows(_rows_csv(text, filename), name=name, source=filename,
                              instruction=instruction, where="line")
    except RecursionError:
        raise TaskError(f"{filename}: nested too deeply.") from None


def _no_alias_loader() -> type:
    """A safe YAML loader that refuses an alias (``*name``) as it meets it, before any
    expansion: a tree of aliases ("billion laughs") would otherwise grow to gigabytes."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                ev = self.peek_event()
                raise _YamlAlias(ev.anchor, ev.start_mark.line + 1 if ev.start_mark else 0)
            return super().compose_node(parent, index)

    return NoAliasLoader


class _YamlAlias(Exception):
    def __init__(self, anchor: str, line: int):
        super().__init__(anchor, line)
        self.anchor, self.line = anchor, line


def _yaml_loads(text: str, filename: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_no_alias_loader())  # noqa: S506 - a SafeLoader
    except _YamlAlias as exc:
        raise TaskError(f"{filename}: line {exc.line} uses the YAML alias *{exc.anchor}; "
                        "task files may not use aliases (anchors and '*' references).",
                        hint="Write the value out in full where the alias is.") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TaskError(f"{filename}: invalid YAML{where}: {exc.problem}.") from None
    except yaml.YAMLError as exc:
        raise TaskError(f"{filename}: invalid YAML: {exc}.") from None


def load_task(path: str | Path, *, instruction: str | None = None) -> TaskSpec:
    """Load a task file (own JSON/YAML, NIv2 JSON, CSV/JSONL rows)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise TaskError(f"Task file {p} does not exist or is not a file.",
                        hint="Pass the path to a .json, .yaml, .csv or .jsonl task file "
                             "(see examples/sentiment.json).")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise TaskError(f"{p} is larger than {MAX_FILE_BYTES // 1024 // 1024} MB.")
    return parse_task_bytes(p.read_bytes(), p.name, instruction=instruction)


# --------------------------------------------------------------------------- example files

TASK_SUFFIXES = (".json", ".yaml", ".yml")
MAX_ROWS_BYTES = 50 * 2**20


def read_example_rows(path: str | Path, *, what: str = "Test file",
                      need_output: bool = True, id_prefix: str = "test-",
                      task_start: int = 0) -> list[dict]:
    """``[{"id", "input", "outputs"}]`` from a JSONL/CSV file (columns ``input`` and
    ``output``/``outputs``) or a task file's held-out instances (own JSON/YAML, NIv2 JSON).

    The one reader of example files (``selfguide eval --test``, ``selfguide label
    --inputs``). ``need_output``: every row needs a reference (evaluation); otherwise the
    references are optional but every input must be non-empty (labelling). Rows without an
    ``id`` get ``<id_prefix><n>`` (task instances counted from ``task_start``, file rows
    from 1). Errors are ``DatasetError`` naming the file and the row.
    """
    from selfguide.errors import DatasetError

    path = Path(path).expanduser()
    try:
        size = path.stat().st_size if path.is_file() else None
    except OSError as exc:  # a name too long for the file system, a permission...
        raise DatasetError(f"{what} {str(path)[:120]} cannot be read ({exc.strerror}).") \
            from exc
    if size is None:
        raise DatasetError(f"{what} {path} not found (or not a regular file).")
    if size > MAX_ROWS_BYTES:
        raise DatasetError(f"{what} {path} is larger than 50 MB.")
    suffix = path.suffix.lower()
    if suffix in TASK_SUFFIXES:
        t = load_task(path)
        rows = [{"id": ex.id or f"{id_prefix}{i}", "input": ex.input,
                 "outputs": list(ex.outputs)} for i, ex in enumerate(t.test, start=task_start)]
        if not rows and not need_output:
            raise DatasetError(f"{path} has no test rows to label.",
                               hint="Give a JSONL or CSV file with an 'input' column.")
        return rows
    raw = _table_rows(path, suffix, what)
    rows = [_example_row(path, i, r, need_output, id_prefix)
            for i, r in enumerate(raw, start=1)]
    if not rows and not need_output:
        raise DatasetError(f"{path} has no rows.")
    return rows


def _table_rows(path: Path, suffix: str, what: str) -> list[Any]:
    from selfguide.errors import DatasetError
    from selfguide.runs import store

    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 (byte {exc.start}).") from exc
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        try:
            raw = list(reader)
        except csv.Error as exc:
            raise DatasetError(f"{path}: CSV error: {exc}.") from exc
        if raw and "input" not in (reader.fieldnames or ()):
            raise DatasetError(f"{path}: the header has no 'input' column.",
                               hint=csv_columns_hint(reader.fieldnames or []))
        return raw
    if suffix in (".jsonl", ".ndjson"):
        return store.read_jsonl(path)
    raise DatasetError(f"Unsupported {what.lower()} type {suffix or '(none)'!r} ({path}).",
                       hint="Use .jsonl, .csv or a task .json file.")


def _example_row(path: Path, i: int, r: Any, need_output: bool, id_prefix: str) -> dict:
    from selfguide.errors import DatasetError

    r = r if isinstance(r, dict) else {}
    out = r.get("outputs", r.get("output"))
    out = [out] if isinstance(out, str) else (out or [])
    text_ok = isinstance(r.get("input"), str) and (need_output or r["input"].strip())
    if need_output and (not text_ok or not out or not all(isinstance(o, str) for o in out)):
        raise DatasetError(f"{path}: row {i} needs a string 'input' and an 'output' "
                           "(string or list of strings).")
    if not text_ok:
        raise DatasetError(f"{path}: row {i} needs a non-empty text 'input'.",
                           hint="Columns: input, and optionally output.")
    if not all(isinstance(o, str) for o in out):
        raise DatasetError(f"{path}: row {i}: 'output' must be text.")
    return {"id": str(r.get("id") or f"{id_prefix}{i}"), "input": r["input"],
            "outputs": list(out) if need_output else [o for o in out if o.strip()]}
