"""Task specs: what the user wants the model to do, and loaders for task files.

A :class:`TaskSpec` holds the instruction, the demonstrations (input/output pairs), the task
type (classification | generation), the label set and the metric. Held-out test rows, when
a file carries them (NIv2 ``Instances``), are kept in ``test`` and never shown to the model
during synthesis or training.

Loaders (:func:`load_task` for paths, :func:`parse_task_bytes` for uploads):

- our own JSON or YAML task file::

      {"name": "sentiment", "instruction": "...", "task_type": "classification",
       "labels": ["positive", "negative"], "metric": "exact_match",
       "examples": [{"input": "...", "output": "positive"}, ...],
       "test": [{"input": "...", "output": "negative"}, ...]}

  (``demos`` is accepted for ``examples``; ``task_type``, ``labels``, ``metric``, ``test``,
  ``name`` and ``source`` are optional);
- an official Natural Instructions V2 task file (``Definition``, ``Positive Examples``,
  ``Instances``; the ``Labels``/``Metric`` hints are honoured, otherwise classification is
  inferred when the outputs form a small repeated label set);
- a CSV or JSONL file of ``input``,``output`` rows (optional columns ``instruction`` and
  ``split`` = ``demo``|``test``; without ``split``, up to 10 rows are all demos, more rows
  give 3 demos and the rest as test rows).

Every problem raises :class:`~selfguide.errors.TaskError` naming the field, line or byte
offset. Labels are compared through :func:`selfguide.parsing.normalize_label` (NFKC, strip,
casefold, edge punctuation): "Positive ", "POSITIVE" and "positive." all match the label
"positive"; two labels equal after it are refused naming both, and a label with a control
or zero-width character is refused (:func:`selfguide.parsing.label_problem`).

This module validates and converts; it does not prompt models or write run directories.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfguide.errors import TaskError
from selfguide.parsing import label_problem, normalize_label

TASK_TYPES = ("classification", "generation")
METRICS = ("exact_match", "rouge_l")
MAX_FILE_BYTES = 50 * 1024 * 1024      # the studio's upload limit
MAX_TEXT_CHARS = 20_000                # per instruction / input / output
MAX_LABELS = 50
_OWN_KEYS = {"name", "instruction", "examples", "demos", "task_type", "labels", "metric",
             "test", "source"}
_METRIC_ALIASES = {"exact_match": "exact_match", "exactmatch": "exact_match", "em": "exact_match",
                   "accuracy": "exact_match", "rouge_l": "rouge_l", "rougel": "rouge_l",
                   "rouge-l": "rouge_l", "rouge": "rouge_l"}


@dataclass(frozen=True)
class Demo:
    input: str
    output: str


@dataclass(frozen=True)
class TestExample:
    __test__ = False  # not a pytest test class
    input: str
    outputs: tuple[str, ...]  # accepted answers; the first is the reference
    id: str = ""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    instruction: str
    demos: tuple[Demo, ...]
    task_type: str = "generation"
    labels: tuple[str, ...] = ()
    metric: str = "rouge_l"
    test: tuple[TestExample, ...] = field(default=(), compare=False)
    source: str = ""

    @property
    def is_classification(self) -> bool:
        return self.task_type == "classification"

    def to_dict(self, *, include_test: bool = True) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["demos"] = [dataclasses.asdict(x) for x in self.demos]
        d["labels"] = list(self.labels)
        d["test"] = ([{"input": x.input, "outputs": list(x.outputs), "id": x.id}
                      for x in self.test] if include_test else [])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSpec:
        """Build and validate from our own schema (see the module docstring)."""
        return task_from_dict(d)

    def canonical_label(self, text: str) -> str | None:
        """The declared label equal to ``text`` after :func:`normalize_label`, else None."""
        key = _norm_label(text)
        for lab in self.labels:
            if _norm_label(lab) == key:
                return lab
        return None


# --------------------------------------------------------------------------- validation

def _norm_label(text: str) -> str:
    return normalize_label(text)


def _is_blank(text: str) -> bool:
    """True for "", whitespace, and strings of only invisible format characters (ZWSP...)."""
    return all(ch.isspace() or unicodedata.category(ch) in ("Cf", "Cc", "Zs") for ch in text)


def _text(value: Any, where: str, *, allow_blank: bool = False) -> str:
    if not isinstance(value, str):
        raise TaskError(f"{where} must be a string, got {type(value).__name__} ({value!r:.40}).")
    if len(value) > MAX_TEXT_CHARS:
        raise TaskError(f"{where} is {len(value):,} characters long; the limit is "
                        f"{MAX_TEXT_CHARS:,}.", hint="Shorten it.")
    if not allow_blank and _is_blank(value):
        raise TaskError(f"{where} is empty (or only whitespace/invisible characters).",
                        hint="Fill it in or remove that example.")
    return value


def validate_task(task: TaskSpec) -> TaskSpec:
    """Check a TaskSpec and return it with labels canonicalized; raise ``TaskError``."""
    _text(task.instruction, "instruction")
    _text(task.name, "name")
    if task.task_type not in TASK_TYPES:
        raise TaskError(f"task_type {task.task_type!r} is not one of {', '.join(TASK_TYPES)}.")
    if task.metric not in METRICS:
        raise TaskError(f"metric {task.metric!r} is not one of {', '.join(METRICS)}.")
    if len(task.demos) < 1:
        raise TaskError("examples: a task needs at least 1 demonstration (3 or more is better).",
                        hint='Add "examples": [{"input": "...", "output": "..."}, ...].')
    for i, d in enumerate(task.demos):
        _text(d.input, f"examples[{i}].input")
        _text(d.output, f"examples[{i}].output")
    labels = tuple(task.labels)
    if task.is_classification:
        if len(labels) < 2:
            raise TaskError(f"labels: a classification task needs at least 2 labels, got "
                            f"{len(labels)}.", hint='Add "labels": ["yes", "no"] (for example) '
                                                    'or set "task_type": "generation".')
        if len(labels) > MAX_LABELS:
            raise TaskError(f"labels: {len(labels)} labels; the limit is {MAX_LABELS}.")
        seen: dict[str, int] = {}
        for i, lab in enumerate(labels):
            _text(lab, f"labels[{i}]")
            problem = label_problem(lab)
            if problem:
                raise TaskError(f"labels[{i}] {lab!r} {problem}.",
                                hint="Write the label as plain visible text on one line.")
            key = _norm_label(lab)
            if key in seen:
                raise TaskError(f"labels[{i}] {lab!r} duplicates labels[{seen[key]}] "
                                f"{labels[seen[key]]!r}: both are {key!r} after normalisation "
                                "(case, character width and surrounding punctuation are "
                                "ignored).", hint="Keep one of them.")
            seen[key] = i
        labels = tuple(lab.strip() for lab in labels)
        canon = dataclasses.replace(task, labels=labels)
        demos = []
        for i, d in enumerate(task.demos):
            lab = canon.canonical_label(d.output)
            if lab is None:
                raise TaskError(f"examples[{i}].output {d.output!r} is not one of the labels "
                                f"({', '.join(labels)}).",
                                hint="Use exactly one of the labels (case, width and "
                                     "surrounding spaces/punctuation are ignored) or add it "
                                     "to 'labels'.")
            demos.append(Demo(d.input, lab))
        tests = []
        for i, t in enumerate(task.test):
            outs = []
            for o in t.outputs:
                lab = canon.canonical_label(o)
                if lab is None:
                    raise TaskError(f"test[{i}].output {o!r} is not one of the labels "
                                    f"({', '.join(labels)}).")
                outs.append(lab)
            tests.append(dataclasses.replace(t, outputs=tuple(outs)))
        task = dataclasses.replace(canon, demos=tuple(demos), test=tuple(tests))
    elif labels:
        task = dataclasses.replace(task, labels=())
    for i, t in enumerate(task.test):
        _text(t.input, f"test[{i}].input", allow_blank=True)
        if not t.outputs:
            raise TaskError(f"test[{i}] has no output.")
    return task


# --------------------------------------------------------------------------- own schema

def _as_list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise TaskError(f"'{where}' must be a list, got {type(value).__name__}.",
                        hint=f'Write "{where}": [{{"input": "...", "output": "..."}}, ...].')
    return value


def _example(obj: Any, where: str, *, test: bool) -> Demo | TestExample:
    if not isinstance(obj, dict):
        raise TaskError(f"{where} must be an object with 'input' and 'output', got "
                        f"{type(obj).__name__}.")
    extra = set(obj) - {"input", "output", "outputs", "id", "explanation"}
    if extra:
        raise TaskError(f"{where} has unknown key(s): {', '.join(sorted(extra))}.",
                        hint="An example has 'input' and 'output' only.")
    if "input" not in obj:
        raise TaskError(f"{where}.input is missing.")
    inp = _text(obj["input"], f"{where}.input", allow_blank=test)
    out = obj.get("outputs", obj.get("output"))
    if out is None:
        raise TaskError(f"{where}.output is missing.")
    if test:
        outs = out if isinstance(out, list) else [out]
        outs = [_text(o, f"{where}.output") for o in outs]
        if not outs:
            raise TaskError(f"{where}.output is an empty list.")
        ident = obj.get("id", "")
        return TestExample(inp, tuple(outs), str(ident))
    if isinstance(out, list):
        raise TaskError(f"{where}.output must be a single string.")
    return Demo(inp, _text(out, f"{where}.output"))


def _metric(value: Any, where: str = "metric") -> str:
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str):
        raise TaskError(f"{where} must be a string, one of {', '.join(METRICS)}.")
    key = value.strip().lower().replace(" ", "")
    if key not in _METRIC_ALIASES:
        raise TaskError(f"{where} {value!r} is not one of {', '.join(METRICS)}.")
    return _METRIC_ALIASES[key]


def task_from_dict(d: Any, *, default_name: str = "task", source: str = "") -> TaskSpec:
    """Our own schema (also what :meth:`TaskSpec.to_dict` writes) -> validated TaskSpec."""
    if not isinstance(d, dict):
        raise TaskError(f"A task file must be a JSON/YAML object, got {type(d).__name__}.")
    unknown = set(d) - _OWN_KEYS
    if unknown:
        raise TaskError(f"Unknown key(s) in the task: {', '.join(sorted(map(str, unknown)))}.",
                        hint=f"Known keys: {', '.join(sorted(_OWN_KEYS))}.")
    if "instruction" not in d:
        raise TaskError("instruction is missing.", hint='Add "instruction": "what to do".')
    if "examples" in d and "demos" in d:
        raise TaskError("Give either 'examples' or 'demos', not both.")
    key = "demos" if "demos" in d else "examples"
    if key not in d:
        raise TaskError("examples is missing.",
                        hint='Add "examples": [{"input": "...", "output": "..."}, ...].')
    demos = tuple(_example(x, f"{key}[{i}]", test=False)
                  for i, x in enumerate(_as_list(d[key], key)))
    tests = tuple(_example(x, f"test[{i}]", test=True)
                  for i, x in enumerate(_as_list(d.get("test") or [], "test")))
    labels = d.get("labels") or []
    if isinstance(labels, str) or not isinstance(labels, list):
        raise TaskError("labels must be a list of strings.")
    labels = tuple(_text(x, f"labels[{i}]") for i, x in enumerate(labels))
    task_type = d.get("task_type") or ("classification" if labels else "generation")
    if task_type not in TASK_TYPES:
        raise TaskError(f"task_type {task_type!r} is not one of {', '.join(TASK_TYPES)}.")
    metric = _metric(d["metric"]) if d.get("metric") else (
        "exact_match" if task_type == "classification" else "rouge_l")
    name = d.get("name") or default_name
    task = TaskSpec(name=_text(name, "name").strip(), instruction=_text(d["instruction"],
                    "instruction").strip(), demos=demos, task_type=task_type, labels=labels,
                    metric=metric, test=tests, source=str(d.get("source") or source))
    return validate_task(task)


# --------------------------------------------------------------------------- NIv2

def infer_labels(outputs: list[str], *, max_labels: int = 10) -> tuple[str, ...]:
    """Labels when ``outputs`` form a small repeated set (each seen twice or more), else ()."""
    counts: dict[str, int] = {}
    canon: dict[str, str] = {}
    for o in outputs:
        k = _norm_label(o)
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
    instruction = _text(definition if definition is not None else "", "Definition")
    pos = _as_list(d.get("Positive Examples"), "Positive Examples")
    demos = tuple(_example({k: v for k, v in x.items() if k != "explanation"}
                           if isinstance(x, dict) else x, f"Positive Examples[{i}]", test=False)
                  for i, x in enumerate(pos))
    tests = tuple(_example(x, f"Instances[{i}]", test=True)
                  for i, x in enumerate(_as_list(d.get("Instances") or [], "Instances")))
    labels = d.get("Labels")
    if labels is not None:
        labels = tuple(_text(x, f"Labels[{i}]") for i, x in
                       enumerate(_as_list(labels, "Labels")))
    else:
        labels = infer_labels([t.outputs[0] for t in tests] + [x.output for x in demos])
    task_type = "classification" if labels else "generation"
    metric = _metric(d["Metric"], "Metric") if d.get("Metric") else (
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
        ex = _example({"input": r["input"], "output": r["output"]}, f"{where} {line}",
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


def _yaml_loads(text: str, filename: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
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


def example_tasks() -> dict[str, Path]:
    """Example task files shipped in ``selfguide/data`` (name -> path), for the studio."""
    from importlib import resources

    root = Path(str(resources.files("selfguide") / "data"))
    return {p.stem: p for p in sorted(root.glob("*.json"))} if root.is_dir() else {}
