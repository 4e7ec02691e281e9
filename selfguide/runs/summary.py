"""One run in a few facts: what ``selfguide runs`` lists and the studio's Runs table shows.

What it does: :func:`summarize` reads a run's small files (manifest, config, dataset
report, evaluation metrics, the task's name, job status) into one :class:`RunSummary`;
:func:`stage_states` says each stage's status as its job does (a "running" stage whose
worker died reads "interrupted").

What it does not do: format the summary (the CLI prints a table or JSON, the studio a
row), catch a damaged file (``CorruptFile`` reaches the caller, which lists the run as
damaged beside the others), or change a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from selfguide.runs.rundir import RunDir, as_run
from selfguide.runs.stale import stale_stages


@dataclass(frozen=True)
class RunSummary:
    """What one run is and how far it got."""

    name: str
    method: str
    task: str
    model: str
    stages: dict[str, Any]      # the manifest's stage entries (status, updated...)
    states: dict[str, str]      # each stage's status, corrected by its job
    jobs: dict[str, str]        # each job the run has had: its state
    stale: dict[str, dict]      # stage -> {"changed", "refresh"}
    candidates: int | None
    kept: int | None            # the dataset report's kept rows (None without one)
    train_rows: int             # kept, or else the rows of dataset/train.jsonl
    degenerate: Any
    metrics: dict | None        # eval/metrics.json
    updated: float


def stage_states(run_dir: str | os.PathLike, man: dict) -> dict[str, str]:
    """Each stage's manifest status, corrected by its job: a "running" stage whose worker
    died (kill -9) reads as the job does ("interrupted"), as the studio shows it."""
    from selfguide import jobs
    from selfguide.errors import SelfGuideError

    out = {}
    for k, v in (man.get("stages") or {}).items():
        state = v.get("status", "") if isinstance(v, dict) else ""
        if state == "running" and RunDir(run_dir).job_dir(k).is_dir():
            try:
                job = jobs.status(run_dir, k).state
            except SelfGuideError:  # an odd stage name or status: keep the manifest's word
                job = "running"
            if job not in jobs.ACTIVE:
                state = "interrupted" if job in ("interrupted", "none") else job
        out[k] = state
    return out


def _count_lines(path: os.PathLike) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip())
    except FileNotFoundError:
        return 0


def summarize(run_dir: str | os.PathLike | RunDir) -> RunSummary:
    """The summary of one run; ``CorruptFile`` names a damaged file."""
    from selfguide.runs.workspace import job_states

    run = as_run(run_dir)
    man, cfg, rep = run.read_manifest(), run.read_config(), run.read_report() or {}
    metrics, stale = run.read_metrics(), stale_stages(run)
    task = man.get("task") or rep.get("task") or (run.read_task_dict() or {}).get("name")
    kept = rep.get("kept")
    return RunSummary(
        name=run.name, method=cfg.get("method") or man.get("method") or "",
        task=str(task or ""), model=(cfg.get("model") or {}).get("model") or "",
        stages=man.get("stages") or {}, states=stage_states(run.path, man),
        jobs=job_states(run.name), stale=stale, candidates=rep.get("candidates"),
        kept=kept, train_rows=int((kept if kept is not None
                                   else _count_lines(run.records_file("train"))) or 0),
        degenerate=rep.get("degenerate"), metrics=metrics,
        updated=man.get("updated") or run.path.stat().st_mtime)
