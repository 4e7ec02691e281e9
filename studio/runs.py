"""Run-level views for the studio: one summary row per run, rename, delete, export.

What it does: reads each run directory's small files (manifest, task, config, dataset
report, eval metrics, job status) into a flat summary; renames and deletes runs only by
validated names inside the workspace and never while a job of the run is active; packs a
run's results (not its checkpoints) into a zip for download.

What it does not do: create stage artifacts (the stage commands do) or cache anything.
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

from selfguide import store
from selfguide.errors import CorruptFile, InvalidRunName, JobError, SelfGuideError

STAGES = ("synthesize", "self-instruct", "filter", "train", "eval", "run")
# What an export contains (paths relative to the run); checkpoints are large and resumable
# state, not results.
EXPORT_GLOBS = ("manifest.json", "task.json", "config.json", "overrides.json",
                "candidates.parquet", "dataset/*", "eval/*", "train/adapter/*",
                "train/*.json")


def _safe_json(path: Path) -> Any:
    try:
        return store.read_json(path, default=None)
    except CorruptFile:
        return None


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip())
    except FileNotFoundError:
        return 0


def job_states(run: str) -> dict[str, str]:
    """``{stage: state}`` for every job the run has had."""
    from selfguide import jobs

    try:
        return {j.stage: j.state for j in jobs.list_jobs(run)}
    except SelfGuideError:
        return {}


def active_jobs(run: str) -> list[str]:
    return [s for s, v in job_states(run).items() if v in ("starting", "running")]


def headline_metric(metrics: Any) -> str:
    """A short "before → after" text from ``eval/metrics.json`` (any known shape)."""
    if not isinstance(metrics, dict):
        return ""
    name = metrics.get("metric", "score")
    b, a = metrics.get("before"), metrics.get("after")
    if isinstance(b, dict):
        b = b.get("score", b.get("mean"))
    if isinstance(a, dict):
        a = a.get("score", a.get("mean"))
    if isinstance(a, (int, float)):
        if isinstance(b, (int, float)):
            return f"{name}: {b:.3f} → {a:.3f}"
        return f"{name}: {a:.3f}"
    return ""


def summary(run: str) -> dict:
    """One row of the Runs table."""
    d = store.resolve_run_dir(run)
    man = _safe_json(d / "manifest.json") or {}
    task = _safe_json(d / "task.json") or {}
    cfg = _safe_json(d / "config.json") or {}
    report = _safe_json(d / "dataset" / "report.json") or {}
    metrics = _safe_json(d / "eval" / "metrics.json")
    jobs_ = job_states(run)
    active = [s for s, v in jobs_.items() if v in ("starting", "running")]
    stages = man.get("stages", {}) if isinstance(man, dict) else {}
    if active:
        status = "running: " + ", ".join(active)
    elif stages:
        last = max(stages.items(), key=lambda kv: kv[1].get("updated", 0))
        status = f"{last[0]}: {last[1].get('status', '?')}"
    elif jobs_:
        status = ", ".join(f"{k}: {v}" for k, v in jobs_.items())
    else:
        status = "new"
    kept = report.get("kept") if isinstance(report, dict) else None
    if kept is None:
        kept = count_lines(d / "dataset" / "train.jsonl")
    model = cfg.get("model", {}) if isinstance(cfg, dict) else {}
    updated = man.get("updated") if isinstance(man, dict) else None
    return {
        "run": run,
        "status": status,
        "task": task.get("name", "") if isinstance(task, dict) else "",
        "method": cfg.get("method", "") if isinstance(cfg, dict) else "",
        "model": model.get("model", "") if isinstance(model, dict) else str(model),
        "kept": int(kept or 0),
        "metrics": headline_metric(metrics),
        "updated": updated or d.stat().st_mtime,
    }


def summaries() -> list[dict]:
    return [summary(r) for r in store.list_runs()]


def create(name: str) -> Path:
    """Create an empty run (validated name); an existing run is an error."""
    d = store.resolve_run_dir(name)
    if d.exists():
        raise InvalidRunName(f"A run named {name!r} already exists.",
                             hint="Pick it in the run list or choose another name.")
    d = store.resolve_run_dir(name, create=True)
    store.update_manifest(d, name=name)
    return d


def unique_name(base: str) -> str:
    """``base`` made valid, with ``-2``, ``-3`` … appended until no run has it."""
    base = store.slugify_run_name(base)[:58]
    existing = set(store.list_runs())
    if base not in existing:
        return base
    i = 2
    while f"{base}-{i}" in existing:
        i += 1
    return f"{base}-{i}"


def _refuse_if_active(run: str, action: str) -> None:
    act = active_jobs(run)
    if act:
        raise JobError(f"Cannot {action} run {run!r} while its {', '.join(act)} job is running.",
                       hint="Cancel the job first.")


def rename(old: str, new: str) -> str:
    src = store.resolve_run_dir(old, must_exist=True)
    dst = store.resolve_run_dir(new)
    if dst.exists():
        raise InvalidRunName(f"A run named {new!r} already exists.")
    _refuse_if_active(old, "rename")
    os.rename(src, dst)
    store.update_manifest(dst, name=new)
    return new


def delete(run: str) -> None:
    """Remove a run directory (validated to be inside the workspace, not a symlink)."""
    d = store.resolve_run_dir(run, must_exist=True)
    _refuse_if_active(run, "delete")
    shutil.rmtree(d)


def export_zip(run: str) -> bytes:
    """A zip of the run's results (task, config, dataset, adapter, eval; no checkpoints)."""
    d = store.resolve_run_dir(run, must_exist=True)
    buf = io.BytesIO()
    seen: set[Path] = set()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for pattern in EXPORT_GLOBS:
            for p in sorted(d.glob(pattern)):
                if p.is_file() and not p.is_symlink() and p not in seen \
                        and not p.name.endswith((".lock", ".tmp")):
                    seen.add(p)
                    zf.write(p, f"{run}/{p.relative_to(d).as_posix()}")
    return buf.getvalue()


def next_page(run: str) -> str:
    """The page where the run's next step happens (what 'Open' shows)."""
    d = store.resolve_run_dir(run, must_exist=True)
    if (d / "eval" / "metrics.json").is_file() or (d / "train" / "adapter").is_dir():
        return "studio/pages/compare.py"
    if (d / "dataset" / "train.jsonl").is_file():
        return "studio/pages/finetune.py"
    if (d / "candidates.parquet").is_file():
        return "studio/pages/filter.py"
    if (d / "task.json").is_file():
        return "studio/pages/synthesize.py"
    return "studio/pages/task.py"
