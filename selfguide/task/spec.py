"""Task specs: what the user wants the model to do, validated.

A :class:`TaskSpec` holds the instruction, the demonstrations (input/output pairs), the task
type (classification | generation), the label set and the metric. Held-out test rows, when
a file carries them (NIv2 ``Instances``), are kept in ``test`` and never shown to the model
during synthesis or training.

The file formats (our own JSON/YAML, NIv2, CSV/JSONL rows) are read by
:mod:`selfguide.task.formats` (``load_task`` for paths, ``parse_task_bytes`` for uploads);
this module holds the spec and its own schema:

- our own JSON or YAML task file::

      {"name": "sentiment", "instruction": "...", "task_type": "classification",
       "labels": ["positive", "negative"], "metric": "exact_match",
       "examples": [{"input": "...", "output": "positive"}, ...],
       "test": [{"input": "...", "output": "negative"}, ...]}

  (``demos`` is accepted for ``examples``; ``task_type``, ``labels``, ``metric``, ``test``,
  ``name`` and ``source`` are optional).

Every problem raises :class:`~selfguide.errors.TaskError` naming the field, line or byte
offset. Labels are compared through :func:`selfguide.task.parsing.normalize_label` (NFKC, strip,
casefold, edge punctuation): "Positive ", "POSITIVE" and "positive." all match the label
"positive"; two labels equal after it are refused naming both, and a label with a control
or zero-width character is refused (:func:`selfguide.task.parsing.label_problem`).

This module validates and converts; it does not read files, prompt models or write run
directories.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfguide.errors import TaskError
from selfguide.task.parsing import canonical_label, label_problem, normalize_label

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
        """The declared label equal to ``text`` after :func:`normalize_label`, else None
        (:func:`selfguide.task.parsing.canonical_label`, the one label normaliser)."""
        return canonical_label(text, self.labels)


# --------------------------------------------------------------------------- validation

def _norm_label(text: str) -> str:
    return normalize_label(text)


def _is_blank(text: str) -> bool:
    """True for "", whitespace, and strings of only invisible format characters (ZWSP...)."""
    return all(ch.isspace() or unicodedata.category(ch) in ("Cf", "Cc", "Zs") for ch in text)


_ROW_KINDS = {"examples": "Demonstration", "demos": "Demonstration", "test": "Held-out example",
              "labels": "Label"}


def row_name(kind: str, index: int) -> str:
    """A row as people count it: ``row_name("demos", 0)`` is "Demonstration 1"."""
    return f"{_ROW_KINDS.get(kind, kind)} {index + 1}"


def check_text(value: Any, where: str, *, allow_blank: bool = False) -> str:
    if not isinstance(value, str):
        raise TaskError(f"{where} must be a string, got {type(value).__name__} ({value!r:.40}).")
    if len(value) > MAX_TEXT_CHARS:
        raise TaskError(f"{where} is {len(value):,} characters long; the limit is "
                        f"{MAX_TEXT_CHARS:,}.", hint="Shorten it.")
    if not allow_blank and _is_blank(value):
        raise TaskError(f"{where} is empty (or only whitespace/invisible characters).",
                        hint="Fill it in or remove that example.")
    return value


def _check_labels(labels: tuple[str, ...]) -> None:
    if len(labels) < 2:
        raise TaskError(f"labels: a classification task needs at least 2 labels, got "
                        f"{len(labels)}.", hint='Add "labels": ["yes", "no"] (for example) '
                                                'or set "task_type": "generation".',
                        ui_hint="Write at least 2 labels, comma-separated, or set Type to "
                                "generation.")
    if len(labels) > MAX_LABELS:
        raise TaskError(f"labels: {len(labels)} labels; the limit is {MAX_LABELS}.")
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):
        check_text(lab, row_name("labels", i))
        problem = label_problem(lab)
        if problem:
            raise TaskError(f"{row_name('labels', i)} {lab!r} {problem}.",
                            hint="Write the label as plain visible text on one line.")
        key = _norm_label(lab)
        if key in seen:
            raise TaskError(f"{row_name('labels', i)} {lab!r} duplicates "
                            f"{row_name('labels', seen[key]).lower()} "
                            f"{labels[seen[key]]!r}: both are {key!r} after normalisation "
                            "(case, character width and surrounding punctuation are "
                            "ignored).", hint="Keep one of them.")
        seen[key] = i


def _canonical_outputs(task: TaskSpec) -> TaskSpec:
    """A classification task with its labels stripped and every demo/test output written
    exactly as its declared label."""
    labels = tuple(lab.strip() for lab in task.labels)
    canon = dataclasses.replace(task, labels=labels)
    demos = []
    for i, d in enumerate(task.demos):
        lab = canon.canonical_label(d.output)
        if lab is None:
            raise TaskError(f"{row_name('examples', i)}: the output {d.output!r} is not one "
                            f"of the labels ({', '.join(labels)}).",
                            hint="Use exactly one of the labels (case, width and "
                                 "surrounding spaces/punctuation are ignored) or add it "
                                 "to 'labels'.",
                            ui_hint="Use exactly one of the labels (case, width and "
                                    "surrounding spaces/punctuation are ignored) or add it "
                                    "to Labels.")
        demos.append(Demo(d.input, lab))
    tests = []
    for i, t in enumerate(task.test):
        outs = []
        for o in t.outputs:
            lab = canon.canonical_label(o)
            if lab is None:
                raise TaskError(f"{row_name('test', i)}: the output {o!r} is not one of "
                                f"the labels ({', '.join(labels)}).")
            outs.append(lab)
        tests.append(dataclasses.replace(t, outputs=tuple(outs)))
    return dataclasses.replace(canon, demos=tuple(demos), test=tuple(tests))


def validate_task(task: TaskSpec) -> TaskSpec:
    """Check a TaskSpec and return it with labels canonicalized; raise ``TaskError``."""
    check_text(task.instruction, "instruction")
    check_text(task.name, "name")
    if task.task_type not in TASK_TYPES:
        raise TaskError(f"task_type {task.task_type!r} is not one of {', '.join(TASK_TYPES)}.")
    if task.metric not in METRICS:
        raise TaskError(f"metric {task.metric!r} is not one of {', '.join(METRICS)}.")
    if len(task.demos) < 1:
        raise TaskError("A task needs at least 1 demonstration (3 or more is better).",
                        hint='Add "examples": [{"input": "...", "output": "..."}, ...].',
                        ui_hint="Add input → output rows to the Demonstrations table.")
    for i, d in enumerate(task.demos):
        check_text(d.input, f"{row_name('examples', i)}: the input")
        check_text(d.output, f"{row_name('examples', i)}: the output")
    if task.is_classification:
        _check_labels(tuple(task.labels))
        task = _canonical_outputs(task)
    elif task.labels:
        task = dataclasses.replace(task, labels=())
    for i, t in enumerate(task.test):
        check_text(t.input, f"{row_name('test', i)}: the input", allow_blank=True)
        if not t.outputs:
            raise TaskError(f"{row_name('test', i)} has no output.")
    return task


# --------------------------------------------------------------------------- own schema

def as_list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise TaskError(f"'{where}' must be a list, got {type(value).__name__}.",
                        hint=f'Write "{where}": [{{"input": "...", "output": "..."}}, ...].')
    return value


def parse_example(obj: Any, where: str, *, test: bool) -> Demo | TestExample:
    if not isinstance(obj, dict):
        raise TaskError(f"{where} must be an object with 'input' and 'output', got "
                        f"{type(obj).__name__}.")
    extra = set(obj) - {"input", "output", "outputs", "id", "explanation"}
    if extra:
        raise TaskError(f"{where} has unknown key(s): {', '.join(sorted(extra))}.",
                        hint="An example has 'input' and 'output' only.")
    if "input" not in obj:
        raise TaskError(f"{where}: the input is missing.")
    inp = check_text(obj["input"], f"{where}: the input", allow_blank=test)
    out = obj.get("outputs", obj.get("output"))
    if out is None:
        raise TaskError(f"{where}: the output is missing.")
    if test:
        outs = out if isinstance(out, list) else [out]
        outs = [check_text(o, f"{where}: the output") for o in outs]
        if not outs:
            raise TaskError(f"{where}: the output is an empty list.")
        ident = obj.get("id", "")
        return TestExample(inp, tuple(outs), str(ident))
    if isinstance(out, list):
        raise TaskError(f"{where}: the output must be a single string.")
    return Demo(inp, check_text(out, f"{where}: the output"))


def parse_metric(value: Any, where: str = "metric") -> str:
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
    odd = [k for k in d if not isinstance(k, str)]
    if odd:  # checked before any str(): a key may be any YAML value
        raise TaskError(f"Task keys must be text; found {type(odd[0]).__name__} keys.",
                        hint=f"Known keys: {', '.join(sorted(_OWN_KEYS))}.")
    unknown = set(d) - _OWN_KEYS
    if unknown:
        raise TaskError(f"Unknown key(s) in the task: {', '.join(sorted(unknown))}.",
                        hint=f"Known keys: {', '.join(sorted(_OWN_KEYS))}.")
    if "instruction" not in d:
        raise TaskError("instruction is missing.", hint='Add "instruction": "what to do".')
    if "examples" in d and "demos" in d:
        raise TaskError("Give either 'examples' or 'demos', not both.")
    key = "demos" if "demos" in d else "examples"
    if key not in d:
        raise TaskError("examples is missing.",
                        hint='Add "examples": [{"input": "...", "output": "..."}, ...].')
    demos = tuple(parse_example(x, row_name(key, i), test=False)
                  for i, x in enumerate(as_list(d[key], key)))
    tests = tuple(parse_example(x, row_name("test", i), test=True)
                  for i, x in enumerate(as_list(d.get("test") or [], "test")))
    labels = d.get("labels") or []
    if isinstance(labels, str) or not isinstance(labels, list):
        raise TaskError("labels must be a list of strings.")
    labels = tuple(check_text(x, row_name("labels", i)) for i, x in enumerate(labels))
    task_type = d.get("task_type") or ("classification" if labels else "generation")
    if not isinstance(task_type, str) or task_type not in TASK_TYPES:
        raise TaskError(f"task_type {task_type!r} is not one of {', '.join(TASK_TYPES)}.")
    metric = parse_metric(d["metric"]) if d.get("metric") else (
        "exact_match" if task_type == "classification" else "rouge_l")
    name = d.get("name") or default_name
    src = check_text(d["source"], "source", allow_blank=True) if d.get("source") else source
    task = TaskSpec(name=check_text(name, "name").strip(), instruction=check_text(d["instruction"],
                    "instruction").strip(), demos=demos, task_type=task_type, labels=labels,
                    metric=metric, test=tests, source=src)
    return validate_task(task)


def example_tasks() -> dict[str, Path]:
    """Example task files shipped in ``selfguide/data`` (name -> path), for the studio."""
    from importlib import resources

    root = Path(str(resources.files("selfguide") / "data"))
    return {p.stem: p for p in sorted(root.glob("*.json"))} if root.is_dir() else {}
