"""Shared test helpers (moved from tests/app/test_pages.py): all_text, button, metric, write_status."""

from __future__ import annotations

import os
import time

from selfguide.runs import store


def button(at, label):
    hits = [b for b in (*at.button, *at.sidebar.button) if b.label == label]
    assert hits, f"no button {label!r}; have {[b.label for b in at.button]}"
    return hits[0]


def metric(at, label):
    hits = [m for m in at.metric if m.label == label]
    assert hits, f"no metric {label!r}; have {[m.label for m in at.metric]}"
    return hits[0].value


def all_text(at) -> str:
    els = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.success]
    return "\n".join(str(e.value) for e in els)


def write_status(run_dir, stage, **fields):
    jdir = run_dir / "jobs" / stage
    jdir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    store.atomic_write_json(jdir / "status.json", {
        "run": run_dir.name, "stage": stage, "state": "running", "pid": os.getpid(),
        # a generous interval: a loaded CI machine may take seconds between this write and
        # the page reading it, and a stale heartbeat would (rightly) read as "interrupted"
        "started": now, "heartbeat": now, "heartbeat_interval": 60.0, **fields})
    return jdir

