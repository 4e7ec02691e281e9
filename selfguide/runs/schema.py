"""The typed schema of every file a run holds, and the strict readers that apply it.

What it does: declares, once per run file (``config.json``, ``manifest.json``,
``labelling.json``, ``dataset/report.json``, ``train/train_config.json``,
``train/metrics.json``, ``eval/metrics.json``, ``overrides.json``, the adapter manifest,
the GGUF export summary), its place in the run, the command that writes it and the type of
each field it has; reads a file and checks it against that schema (:func:`load`); reads a
JSONL file that is always written whole (datasets, predictions) strictly, checking its row
count against what the run recorded (:func:`load_whole_jsonl`). Every problem (missing but
required, not JSON, a list where an object belongs, a field of the wrong type, a file cut
short) is one error type, :class:`~selfguide.errors.RunFileError`, naming the run, the file,
the field and what to do: re-run the stage that writes the file, or delete the run.

What it does not do: read append-only logs (``events.jsonl``, ``inputs.jsonl``,
``annotations.jsonl``: :func:`selfguide.runs.store.read_jsonl`, lenient at the tail), decide
the layout (:class:`selfguide.runs.rundir.RunDir`) or write anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfguide.errors import RunFileError

NUM = (int, float)
_TYPE_WORDS = {dict: "an object", list: "a list", str: "a string", int: "a whole number",
               float: "a number", bool: "true or false", type(None): "null"}


@dataclass(frozen=True)
class Each:
    """A JSON object whose every value has one of ``types`` (and, where the value is an
    object, the typed ``fields``)."""

    types: tuple[type, ...]
    fields: Mapping[str, tuple[type, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunFile:
    """One file of a run: where it lives, who writes it, what its fields hold.

    ``fields`` maps a top-level key to the types its value may have (``null`` is always
    accepted: a field that is absent or null means "not recorded"); an :class:`Each` checks
    every value of an object-valued field. Unknown keys are kept as they are.
    """

    rel: str
    writer: str
    fields: Mapping[str, tuple[type, ...] | Each] = field(default_factory=dict)
    remedy: str = ""  # what to do, where re-running ``writer`` is not it

    def fix(self, run: str) -> str:
        first = (self.remedy.format(run=run, rel=self.rel) if self.remedy else
                 f"Re-run '{self.writer.format(run=run)}' to write it again")
        return f"{first}, or delete the run (selfguide runs lists them)."


MANIFEST = RunFile("manifest.json", "selfguide synthesize TASK --run {run}", {
    "name": (str,), "created": NUM, "updated": NUM, "method": (str,), "task": (str,),
    "round": (dict,),
    "stages": Each((dict,), {"status": (str,), "updated": NUM, "config_hash": (str,)})})
CONFIG = RunFile("config.json", "selfguide synthesize TASK --run {run}", {
    "method": (str,), "model": (dict,), "synthesis": (dict,), "filters": (dict,),
    "seed": (int,), "versions": (dict,), "server": (dict,)})
TASK = RunFile("task.json", "selfguide synthesize TASK --run {run}")
OVERRIDES = RunFile("overrides.json", "the Filter page", remedy="Restore {rel} or delete it "
                    "(the manual keep/drop choices and repairs it holds are then lost)")
LABELLING = RunFile("labelling.json", "selfguide synthesize TASK --run {run}", {
    "protocol": (str,), "reason": (str,), "chosen_by": (str,), "requested": (str,),
    "beats_chance": (bool,)})
REPORT = RunFile("dataset/report.json", "selfguide filter --run {run}", {
    "task": (str,), "task_type": (str,), "label_strategy": (str,), "labelling": (dict,),
    "candidates": (int,), "kept": (int,), "train": (int,), "val": (int,),
    "funnel": (list,), "drop_reasons": (dict,), "labels": (dict,), "strategies": (dict,),
    "diagnostics": (list,), "degenerate": (bool,)})
TRAIN_CONFIG = RunFile("train/train_config.json", "selfguide train --run {run}", {
    "train": (dict,), "model": (dict,), "data": (str,), "hash": (str,),
    "world_size": (int,), "completion_prefix": (str,)})
TRAIN_METRICS = RunFile("train/metrics.json", "selfguide train --run {run}", {
    "rows": (int,), "val_rows": (int,), "steps": (int,), "train_loss": NUM, "wall_s": NUM,
    "tokens_per_s": NUM, "completion_prefix": (str,), "dataset": (dict,),
    "eval_losses": (list,), "max_length": (int,)})
EVAL_METRICS = RunFile("eval/metrics.json", "selfguide eval --run {run}", {
    "metric": (str,), "n": (int,), "before": NUM, "after": NUM, "task": (str,),
    "task_type": (str,), "warnings": (list,), "config": (dict,), "adapter": (dict,),
    "train_labels": (dict,), "difference": (dict,), "chat": (bool,), "inputs": (dict,)})
ADAPTER = RunFile("train/adapter/selfguide_adapter.json", "selfguide train --run {run}", {
    "base_fingerprint": (str,), "model": (str,), "chat": (bool,), "kind": (str,),
    "method": (str,), "train_config": (dict,)})
ADAPTER_CONFIG = RunFile("train/adapter/adapter_config.json", "selfguide train --run {run}", {
    "peft_type": (str,), "r": (int,), "lora_alpha": NUM, "lora_dropout": NUM,
    "target_modules": (list, str), "base_model_name_or_path": (str,), "task_type": (str,)})
GGUF_EXPORT = RunFile("export/model-gguf/export.json", "selfguide export-model --run {run}")
TRAIN_RECORDS = RunFile("dataset/train.jsonl", "selfguide filter --run {run}")
VAL_RECORDS = RunFile("dataset/val.jsonl", "selfguide filter --run {run}")
PREDICTIONS = RunFile("eval/predictions.jsonl", "selfguide eval --run {run}")
INTAKE = RunFile("intake.json", "the Task page", {
    "file": (str,), "column": (str,), "documents": (str,)},
    remedy="Choose your inputs again on the Task page (or delete {rel}: the files it names "
           "are kept)")

# What each stage reads, checked before it writes anything (RunDir.check_inputs).
STAGE_READS: dict[str, tuple[RunFile, ...]] = {
    "filter": (MANIFEST, CONFIG, TASK, OVERRIDES, LABELLING),
    "relabel": (MANIFEST, CONFIG, TASK, OVERRIDES, LABELLING, REPORT, TRAIN_CONFIG, ADAPTER,
                ADAPTER_CONFIG),
    "export": (MANIFEST, CONFIG, TASK, REPORT, TRAIN_RECORDS, VAL_RECORDS),
    "train": (MANIFEST, CONFIG, TASK, REPORT, TRAIN_RECORDS, VAL_RECORDS, TRAIN_CONFIG),
    "eval": (MANIFEST, CONFIG, TASK, REPORT, TRAIN_METRICS, ADAPTER, ADAPTER_CONFIG),
    "export-model": (MANIFEST, CONFIG, TASK, REPORT, TRAIN_METRICS, EVAL_METRICS, ADAPTER,
                     ADAPTER_CONFIG),
    "merge": (MANIFEST, CONFIG, TASK, REPORT, TRAIN_METRICS, EVAL_METRICS, ADAPTER,
              ADAPTER_CONFIG),
}

FILES = (MANIFEST, CONFIG, TASK, OVERRIDES, LABELLING, REPORT, TRAIN_CONFIG, TRAIN_METRICS,
         EVAL_METRICS, ADAPTER, ADAPTER_CONFIG, GGUF_EXPORT, TRAIN_RECORDS, VAL_RECORDS,
         PREDICTIONS, INTAKE)


def _word(value: Any) -> str:
    return _TYPE_WORDS.get(type(value), type(value).__name__)


def _want(types: tuple[type, ...]) -> str:
    return " or ".join(dict.fromkeys(_TYPE_WORDS.get(t, t.__name__) for t in types))


def _fits(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # JSON true/false is no number here
        return bool in types
    return isinstance(value, types)


def error(run_path: str | os.PathLike, spec: RunFile, problem: str) -> RunFileError:
    """The one error for a damaged run file: run, file, problem and what to do."""
    run = Path(run_path).name
    return RunFileError(f"Run {run!r}: {spec.rel} {problem}.", hint=spec.fix(run))


def check(run_path: str | os.PathLike, spec: RunFile, data: Any) -> dict:
    """``data`` if it is an object whose typed fields have their types; else
    :class:`RunFileError` naming the first field that does not."""
    if not isinstance(data, dict):
        raise error(run_path, spec, f"holds {_word(data)}, not an object")
    for key, want in spec.fields.items():
        value = data.get(key)
        if value is None:
            continue
        types = want.types if isinstance(want, Each) else want
        if isinstance(want, Each):
            if not isinstance(value, dict):
                raise error(run_path, spec, f"field {key!r} is {_word(value)}, not an object")
            for k, v in value.items():
                if not _fits(v, types):
                    raise error(run_path, spec, f"field '{key}.{k}' is {_word(v)}, "
                                                f"not {_want(types)}")
                for f, ft in (want.fields.items() if isinstance(v, dict) else ()):
                    if v.get(f) is not None and not _fits(v[f], ft):
                        raise error(run_path, spec, f"field '{key}.{k}.{f}' is "
                                                    f"{_word(v[f])}, not {_want(ft)}")
        elif not _fits(value, types):
            raise error(run_path, spec, f"field {key!r} is {_word(value)}, not {_want(types)}")
    return data


def _read_bytes(run_path: Path, spec: RunFile, *, required: bool) -> bytes | None:
    path = run_path / spec.rel
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if required:
            raise error(run_path, spec, "is missing") from None
        return None
    except IsADirectoryError:
        raise error(run_path, spec, "is a folder, not a file") from None


def load(run_path: str | os.PathLike, spec: RunFile, *, required: bool = False
         ) -> dict | None:
    """The checked content of ``spec``'s file in the run; ``None`` when it does not exist
    (or :class:`RunFileError` when ``required``). Never a default for a file that exists."""
    run_path = Path(run_path)
    raw = _read_bytes(run_path, spec, required=required)
    if raw is None:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(run_path, spec, f"is not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise error(run_path, spec, f"is not valid JSON (line {exc.lineno}: {exc.msg})"
                    ) from exc
    return check(run_path, spec, data)


def load_whole_jsonl(run_path: str | os.PathLike, spec: RunFile, *,
                     expected: int | None = None, required: bool = True) -> list[dict]:
    """The rows of a JSONL file that is always written whole, read strictly: every line
    (the last included) must be a JSON object and the file must end with a newline; with
    ``expected`` (the count the run recorded), the row count must match it."""
    run_path = Path(run_path)
    raw = _read_bytes(run_path, spec, required=required)
    if raw is None:
        return []
    if raw and not raw.endswith(b"\n"):
        raise error(run_path, spec, "is cut short (its last line is incomplete)")
    rows = []
    for i, line in enumerate(raw.split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise error(run_path, spec, f"line {i} is not valid JSON") from None
        if not isinstance(rec, dict):
            raise error(run_path, spec, f"line {i} is {_word(rec)}, not an object")
        rows.append(rec)
    if expected is not None and len(rows) != expected:
        raise error(run_path, spec, f"holds {len(rows)} rows where the run recorded "
                                    f"{expected}")
    return rows
