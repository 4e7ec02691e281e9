"""Rounds of a run's data (issue 34, "one more round"): which round the dataset comes from,
and the files of the earlier rounds, kept.

What it does: a run's first dataset is round 1 (stage 2 answered by the base model). A
later round re-answers the same inputs with the tuned model of the round before and
trains again; before it starts, :func:`archive` copies what the current round made --
``annotations.jsonl``, ``labelling.json``, ``candidates.parquet``, ``overrides.json``,
``dataset/``, the adapter with its training settings and metrics, and the evaluation --
into ``rounds/<k>/`` (a staged folder renamed into place: an archive is whole or absent,
and never rewritten). :func:`state` / :func:`set_state` keep ``{"current", "state",
"source"}`` in the manifest's ``round`` (``state``: ``labelling`` while round ``current``
is being answered, ``done`` once its dataset is written); :func:`dataset_round` says which
round the dataset on disk comes from. :func:`start_labelling` clears the answers of the
round before (kept in its archive) so stage 2 starts afresh.

What it does not do: answer, filter or train (the method's ``relabel`` and training do),
or decide when a new round is worth it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from selfguide.runs.rundir import RunDir

# The run files a round makes, relative to the run folder (the adapter is a folder).
ROUND_FILES = ("annotations.jsonl", "labelling.json", "candidates.parquet", "overrides.json",
               "dataset/train.jsonl", "dataset/val.jsonl", "dataset/report.json",
               "train/train_config.json", "train/metrics.json", "eval/metrics.json",
               "eval/predictions.jsonl")
ROUND_DIRS = ("train/adapter",)


def state(run: RunDir) -> dict[str, Any]:
    """``{"current": k, "state": "done"|"labelling", "source": words}``; a run that never
    had a second round is round 1, done."""
    raw = run.read_manifest().get("round")
    out = {"current": 1, "state": "done", "source": ""}
    if isinstance(raw, dict):
        out.update({k: raw[k] for k in out if k in raw})
    return out


def set_state(run: RunDir, current: int, status: str, source: str = "") -> dict[str, Any]:
    """Record the round being made (``labelling``) or made (``done``) in the manifest."""
    entry = {"current": int(current), "state": status, "source": source}
    run.update_manifest(round=entry)
    return entry


def dataset_round(run: RunDir) -> dict[str, Any] | None:
    """The round the dataset files come from, for the report and the card: ``None`` for
    round 1, else ``{"round": k, "source": "answers from the tuned model of round k-1"}``.
    While round k is being answered the files are still round k-1's."""
    s = state(run)
    k = s["current"] if s["state"] == "done" else s["current"] - 1
    if k <= 1:
        return None
    return {"round": k, "source": s["source"] or f"answers from the tuned model of round "
                                                 f"{k - 1}"}


def round_dir(run: RunDir, k: int) -> Path:
    """``rounds/<k>/``: the files round ``k`` made, kept when round ``k + 1`` started."""
    return run.rounds_dir / str(int(k))


def archived(run: RunDir) -> list[int]:
    """The rounds whose files are kept under ``rounds/``, in order."""
    if not run.rounds_dir.is_dir():
        return []
    return sorted(int(p.name) for p in run.rounds_dir.iterdir()
                  if p.is_dir() and p.name.isdigit())


def archive(run: RunDir, k: int) -> Path:
    """Copy round ``k``'s files into ``rounds/<k>/`` (once: an existing archive is kept
    as it is, so a rerun after a crash never overwrites it with later files)."""
    dest = round_dir(run, k)
    if dest.is_dir():
        return dest
    run.recover_adapter()
    tmp = run.rounds_dir / f".{int(k)}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for rel in ROUND_FILES:
        src = run.path / rel
        if src.is_file():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tmp / rel)
    for rel in ROUND_DIRS:
        src = run.path / rel
        if src.is_dir():
            shutil.copytree(src, tmp / rel)
    tmp.mkdir(parents=True, exist_ok=True)  # a round with none of them still has a folder
    tmp.rename(dest)
    return dest


def start_labelling(run: RunDir, k: int, source: str) -> dict[str, Any]:
    """Round ``k`` begins: the answers of round ``k - 1`` (archived first) leave the run
    folder, and the manifest says round ``k`` is being answered."""
    if not round_dir(run, k - 1).is_dir():
        raise FileNotFoundError(f"round {k - 1} of {run.name!r} is not archived")
    run.annotations_file.unlink(missing_ok=True)
    return set_state(run, k, "labelling", source)


def reset(run: RunDir) -> None:
    """Back to round 1 with no earlier rounds (a synthesis that discards the generated
    data, ``--overwrite``, discards the rounds made from it too)."""
    shutil.rmtree(run.rounds_dir, ignore_errors=True)
    if "round" in run.read_manifest():
        set_state(run, 1, "done")


def archived_run(run: RunDir, k: int) -> RunDir | None:
    """Round ``k``'s archive read as a run folder (same layout: ``eval/metrics.json``,
    ``dataset/report.json``...), or ``None`` when it is not kept."""
    d = round_dir(run, k)
    return RunDir(d) if d.is_dir() else None
