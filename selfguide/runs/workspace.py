"""Runs as wholes: create, name, save a task into, rename, delete and export a run.

What it does: the operations on whole run directories that the studio's Task and Runs
pages offer, by validated names inside the workspace (``store.resolve_run_dir``) and never
while one of the run's jobs is active: a new empty run, a free name derived from a task
name, saving a ``TaskSpec`` into a run (``task.json`` plus the manifest's ``name``/``task``),
rename, delete, and a zip of a run's results (not its checkpoints).

What it does not do: write stage artifacts (the stage commands do), summarise runs for a
table (``selfguide.runs.summary``) or run jobs (``selfguide.jobs``).
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from selfguide.errors import InvalidRunName, JobError, SelfGuideError
from selfguide.runs import names as runnames
from selfguide.runs import store
from selfguide.runs.rundir import RunDir

if TYPE_CHECKING:  # pragma: no cover
    from selfguide.task.spec import TaskSpec

# What an export contains (paths relative to the run); checkpoints are large and resumable
# state, not results.
EXPORT_GLOBS = ("manifest.json", "task.json", "config.json", "overrides.json",
                "candidates.parquet", "dataset/*", "eval/*", "train/adapter/*",
                "train/*.json")


def job_states(run: str) -> dict[str, str]:
    """``{stage: state}`` for every job the run has had (``{}`` when unreadable)."""
    from selfguide import jobs

    try:
        return {j.stage: j.state for j in jobs.list_jobs(run)}
    except SelfGuideError:
        return {}


def active_jobs(run: str) -> list[str]:
    """The stages of ``run`` whose job is starting or running."""
    return [s for s, v in job_states(run).items() if v in ("starting", "running")]


def create_run(name: str) -> RunDir:
    """Create an empty run (validated name); an existing run is an error."""
    if RunDir.named(name).exists():
        raise InvalidRunName(f"A run named {name!r} already exists.",
                             hint="Pick it in the run list or choose another name.")
    run = RunDir.named(name, create=True)
    run.update_manifest(name=name)
    return run


def unique_name(base: str) -> str:
    """``base`` made valid, with ``-2``, ``-3`` … appended until no run has it."""
    base = runnames.slugify_run_name(base)[:58]
    existing = set(store.list_runs())
    if base not in existing:
        return base
    i = 2
    while f"{base}-{i}" in existing:
        i += 1
    return f"{base}-{i}"


def save_task(task: TaskSpec, run: str | None = None) -> str:
    """Save ``task`` into run ``run`` (created if needed), or into a new run named after
    the task when ``run`` is None; returns the run's name."""
    target = run or unique_name(task.name)
    rd = RunDir.named(target, create=True)
    rd.write_task(task)
    rd.update_manifest(name=target, task=task.name)
    return target


def _refuse_if_active(run: str, action: str) -> None:
    act = active_jobs(run)
    if act:
        raise JobError(f"Cannot {action} run {run!r} while its {', '.join(act)} job is running.",
                       hint="Cancel the job first.")


def rename_run(old: str, new: str) -> str:
    """Rename run ``old`` to ``new`` (a free, valid name); returns ``new``."""
    src = store.resolve_run_dir(old, must_exist=True)
    dst = RunDir.named(new)
    if dst.exists():
        raise InvalidRunName(f"A run named {new!r} already exists.")
    _refuse_if_active(old, "rename")
    os.rename(src, dst)
    dst.update_manifest(name=new)
    return new


def delete_run(run: str) -> None:
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


__all__ = ["EXPORT_GLOBS", "active_jobs", "create_run", "delete_run", "export_zip",
           "job_states", "rename_run", "save_task", "unique_name"]
