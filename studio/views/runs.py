"""Run-level views for the studio: one summary row per run, and the page to open it on.

What it does: turns each run's summary (``selfguide.runs.summary``, what ``selfguide runs``
lists too) into a flat row for the Runs table, and names the page where a run's next step
happens.

What it does not do: create, rename, delete or export runs (``selfguide.runs.workspace``),
create stage artifacts (the stage commands do) or cache anything.
"""

from __future__ import annotations

from typing import Any

from selfguide.errors import CorruptFile
from selfguide.runs import store
from selfguide.runs.rundir import RunDir
from selfguide.runs.summary import summarize
from studio.app import frame


def headline_metric(metrics: Any) -> str:
    """A short "before → after" text from ``eval/metrics.json`` (any known shape)."""
    if not isinstance(metrics, dict):
        return ""
    collapse = metrics.get("collapse") or {}
    tail = f" · collapse to \u201c{collapse.get('label')}\u201d" if collapse else ""
    if metrics.get("mode") == "unlabeled":
        agree = metrics.get("agreement")
        return ("no labels" + (f": {agree:.0%} agree" if isinstance(agree, (int, float))
                               else "") + tail)
    name = metrics.get("metric", "score")
    b, a = metrics.get("before"), metrics.get("after")
    if isinstance(b, dict):
        b = b.get("score", b.get("mean"))
    if isinstance(a, dict):
        a = a.get("score", a.get("mean"))
    if isinstance(a, (int, float)):
        if isinstance(b, (int, float)):
            return f"{name}: {b:.3f} → {a:.3f}{tail}"
        return f"{name}: {a:.3f}{tail}"
    return ""


def _status(stages: dict, jobs_: dict[str, str]) -> str:
    active = [s for s, v in jobs_.items() if v in ("starting", "running")]
    if active:
        return "running: " + ", ".join(active)
    if stages:
        last = max(stages.items(), key=lambda kv: kv[1].get("updated", 0))
        return f"{last[0]}: {last[1].get('status', '?')}"
    if jobs_:
        return ", ".join(f"{k}: {v}" for k, v in jobs_.items())
    return "new"


def summary(run: str) -> dict:
    """One row of the Runs table (:func:`selfguide.runs.summary.summarize`)."""
    d = RunDir.named(run)
    try:
        s = summarize(d)
    except CorruptFile as exc:  # a damaged file: the row says which, the others still list
        return {"run": run, "status": f"damaged: {exc.message}", "task": "", "method": "",
                "model": "", "kept": 0, "metrics": "", "stale": "",
                "updated": d.path.stat().st_mtime}
    return {
        "run": run,
        "status": _status(s.stages, s.jobs),
        "task": s.task,
        "method": s.method,
        "model": s.model,
        "kept": s.train_rows,
        "metrics": headline_metric(s.metrics),
        "stale": "; ".join(f"{k}: {v['changed']} (refresh: {v['refresh']})"
                           for k, v in s.stale.items()),
        "updated": s.updated,
    }


def summaries() -> list[dict]:
    return [summary(r) for r in store.list_runs()]


def next_page(run: str) -> str:
    """The page where the run's next step happens (what 'Open' shows)."""
    d = RunDir.named(run, must_exist=True)
    if d.metrics_file.is_file() or d.adapter_dir.is_dir():
        return frame.page_path("compare")
    if d.records_file("train").is_file():
        return frame.page_path("finetune")
    if d.candidates_file.is_file():
        return frame.page_path("filter")
    if d.task_file.is_file():
        return frame.page_path("synthesize")
    return frame.page_path("task")
