"""The training set of a run, whatever method made it: its records on disk and exports.

Every method writes records ``{"id", "prompt", "completion", "input", "output"[, "label"]
[, "origin"]}`` whose ``prompt`` is THE prompt (:mod:`selfguide.task.prompts`) and whose
``completion`` has no leading space (training appends it to ``render_prompt(...)`` and adds
EOS); ``origin`` is ``given`` (the user's own input) or ``generated`` (the model wrote it),
and the jsonl, alpaca and hf-dataset exports carry it.
:func:`write_dataset` writes ``dataset/{train,val}.jsonl`` and ``dataset/report.json``
atomically; :func:`load_records` reads them back; :func:`export` writes jsonl / alpaca /
hf-dataset copies and the chat formats (TRL prompt-completion, ``messages``, ShareGPT),
each with a dataset card.

It does not generate, filter, build a method's records or report
(``selfguide.methods.<name>``), or train.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from selfguide.errors import DatasetError
from selfguide.runs import store
from selfguide.runs.rundir import as_run


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


# Chat-format exports: one JSON line per record, the prompt as the single user turn (the
# run trains on exactly that turn, rendered with the model's chat template).
CHAT_EXPORTS = {
    "prompt-completion": lambda r: {"prompt": [_user(r["prompt"])],
                                    "completion": [_assistant(r["completion"])]},
    "messages": lambda r: {"messages": [_user(r["prompt"]), _assistant(r["completion"])]},
    "sharegpt": lambda r: {"conversations": [{"from": "human", "value": r["prompt"]},
                                             {"from": "gpt", "value": r["completion"]}]},
}
EXPORT_FORMATS = ("jsonl", "alpaca", "hf-dataset", *CHAT_EXPORTS)
EXPORT_NAMES = {"jsonl": "train.jsonl", "alpaca": "alpaca.json", "hf-dataset": "hf-dataset",
                "prompt-completion": "prompt_completion.jsonl", "messages": "messages.jsonl",
                "sharegpt": "sharegpt.jsonl"}


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def write_dataset(run_dir: str | os.PathLike, train: list[dict], val: list[dict],
                  report: dict) -> dict:
    """Write dataset/train.jsonl, dataset/val.jsonl and dataset/report.json; return the report."""
    run = as_run(run_dir)
    store.atomic_write_text(run.records_file("train"), jsonl(train))
    store.atomic_write_text(run.records_file("val"), jsonl(val))
    run.write_report(report)
    return report


def load_records(run_dir: str | os.PathLike, split: str = "train") -> list[dict]:
    """The records of ``dataset/<split>.jsonl``; ``DatasetError`` if the dataset is missing."""
    return as_run(run_dir).read_records(split)


def load_report(run_dir: str | os.PathLike) -> dict | None:
    return as_run(run_dir).read_report()


def export(run_dir: str | os.PathLike, fmt: str, dest: str | Path | None = None, *,
           force: bool = False, card: bool = True) -> Path:
    """Write the train split as ``jsonl`` (prompt/completion records), ``alpaca``
    (instruction/input/output JSON list), ``hf-dataset`` (``datasets.save_to_disk``) or a
    chat format (:data:`CHAT_EXPORTS`: TRL prompt-completion, ``messages``, ShareGPT), and
    with ``card`` a dataset card (``README.md``, see :func:`write_export_card`).

    An explicit ``dest`` follows :mod:`selfguide.runs.outpaths`: a missing path, or an existing
    regular file with ``force``; a new or empty directory for ``hf-dataset``. Links,
    devices, FIFOs and non-empty directories are refused, and checked before any work.
    """
    from selfguide.runs import outpaths
    if fmt not in EXPORT_FORMATS:
        raise DatasetError(f"Unknown export format {fmt!r}; use one of "
                           f"{', '.join(EXPORT_FORMATS)}.")
    if dest is not None:
        dest = (outpaths.check_output_dir(dest, force=force) if fmt == "hf-dataset"
                else outpaths.check_output_file(dest, force=force))
    run = as_run(run_dir)
    recs = run.read_records("train")
    out_dir = run.export_dir
    if fmt == "jsonl":
        path = Path(dest) if dest else out_dir / "train.jsonl"
        _write_export(path, jsonl(recs), own=dest is None, force=force)
    elif fmt in CHAT_EXPORTS:
        path = Path(dest) if dest else out_dir / EXPORT_NAMES[fmt]
        _write_export(path, jsonl([CHAT_EXPORTS[fmt](r) for r in recs]), own=dest is None,
                      force=force)
    elif fmt == "alpaca":
        path = Path(dest) if dest else out_dir / "alpaca.json"
        instruction = _instructions(run)
        rows = [{"instruction": instruction(r), "input": r["input"], "output": r["completion"],
                 "origin": r.get("origin") or "generated"} for r in recs]
        _write_export(path, json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n",
                      own=dest is None, force=force)
    else:
        path = Path(dest) if dest else out_dir / "hf-dataset"
        _write_hf_dataset(recs, path, own=dest is None)
    if card:
        write_export_card(run, fmt, path)
    return path


def _instructions(run) -> Callable[[dict], str]:
    """A record's instruction: the run's task's (SELF-GUIDE), else the one its candidate
    row was generated for (Self-Instruct: every row has its own)."""
    task = run.read_task()
    if task is not None:
        return lambda r: task.instruction
    from selfguide.methods import candidates

    df = candidates.read(run)
    by_id = dict(zip(df["id"].astype(str), df["instruction"].astype(str))) \
        if df is not None and "instruction" in df.columns else {}
    return lambda r: by_id.get(str(r.get("id")), "")


def write_export_card(run_dir: str | os.PathLike, fmt: str, path: str | Path) -> Path | None:
    """The dataset card of an export: ``README.md`` inside an ``hf-dataset`` folder, beside
    a file otherwise, but only in a folder that holds nothing else (the run's export folder,
    or a dedicated one); None when skipped or when a README selfguide did not write is
    already there."""
    from selfguide.export import cards
    path = Path(path)
    folder = path if fmt == "hf-dataset" else path.parent
    if fmt == "hf-dataset":
        files = sorted(p.name for p in folder.iterdir() if p.name != "README.md")
    else:
        files = [path.name]
        others = {p.name for p in folder.iterdir()} - {path.name, "README.md"}
        if folder != as_run(run_dir).export_dir and others:
            return None  # a folder of the user's own: no README dropped into it
    text = cards.dataset_card(cards.run_facts(run_dir), fmt=fmt, files=files)
    return cards.write_card(folder, text)


def _write_hf_dataset(recs: list[dict], path: Path, *, own: bool) -> None:
    """``save_to_disk`` into a staging folder beside ``path``, then one step into place (a
    run's own export replaces the old one with no moment without it): a full disk leaves
    no half-written ``.arrow`` behind, and is a ``StorageError``, not a traceback."""
    import shutil

    from datasets import Dataset

    from selfguide.runs import outpaths, swap

    cols = ("id", "prompt", "completion", "input", "output")
    ds = Dataset.from_dict({**{c: [r[c] for r in recs] for c in cols},  # origin: issue 36
                            "origin": [r.get("origin") or "generated" for r in recs]})
    if own:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store._storage_error(exc, path) from exc
    tmp = outpaths.staging_dir(path)
    try:
        ds.save_to_disk(str(tmp))
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise store._storage_error(exc, path) from exc
        raise
    if own:
        swap.replace_dir(tmp, path, path.with_name(f".{path.name}.old"))
    else:
        outpaths.publish_dir(tmp, path)


def _write_export(path: Path, text: str, *, own: bool, force: bool) -> None:
    """Inside the run (``own``): the run's atomic writer; elsewhere: the safe output writer."""
    from selfguide.runs import outpaths
    if own:
        store.atomic_write_text(path, text)
    else:
        outpaths.write_output_text(path, text, force=force)


