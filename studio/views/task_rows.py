"""The Task page's held-out rows and its guard against losing a task (issue 40).

What it does: draws the held-out rows (an input and its expected output, typed, pasted into
the grid or imported from a file), kept apart from the demonstrations in the task's
``test`` rows: the before/after evaluation scores them, synthesis and training never see
them. And it asks before *Load example* or *Import* replaces a task in the editor that is
not saved anywhere (:func:`request_load`, :func:`confirm_load`).

What it does not do: validate the task (``studio.views.task.validate`` through ``TaskSpec``)
or save it (``selfguide.runs.workspace.save_task``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.runs.rundir import RunDir
from selfguide.task import spec as sgtask
from studio.app import state, widgets

ROW_SUFFIXES = ["jsonl", "csv", "json"]


# --------------------------------------------------------------------------- held-out rows

def grid_base(kind: str, rows: list[dict], v: int) -> list[dict]:
    """The rows the ``kind`` grid of form version ``v`` started from (see
    ``studio.views.task._editor_base``: a dynamic grid keeps its data until the form is
    reset, its edits are replayed onto it)."""
    base = state.draft(f"task.{kind}_base")
    if base.get("v") != v:
        base = {"v": v, "rows": list(rows)}
        state.set_draft(f"task.{kind}_base", base)
    return base["rows"]


def _first_output(row: dict) -> str:
    outs = row.get("outputs")
    if isinstance(outs, (list, tuple)) and outs:
        return str(outs[0])
    return str(row.get("output") or "")


def held_out(d: dict, v: int) -> list[dict]:
    """Draw the held-out rows of draft ``d``; returns them as the task's ``test`` rows."""
    base = grid_base("test", list(d.get("test") or []), v)
    st.markdown("**Held-out rows** (optional) — inputs with the output you expect, kept "
                "apart from the demonstrations: only the before/after comparison uses them "
                "(scores for the base and the tuned model); synthesis and training never see "
                "them. Without any, the Compare page compares the two models on inputs "
                "without labels.")
    df = pd.DataFrame([{"input": str(r.get("input") or ""), "output": _first_output(r)}
                       for r in base], columns=["input", "output"]).astype(str)
    edited = st.data_editor(
        df, num_rows="dynamic", hide_index=True, width="stretch",
        key=state.widget_key("task", "test", v),
        column_config={"input": st.column_config.TextColumn("input", width="large"),
                       "output": st.column_config.TextColumn("expected output",
                                                             width="medium")})
    out = []
    for i, r in enumerate(edited.fillna("").to_dict("records")):
        inp, outp = str(r["input"] or ""), str(r["output"] or "")
        if not inp.strip() and not outp.strip():
            continue
        orig = base[i] if i < len(base) else {}
        outputs = [outp]
        if orig and _first_output(orig) == outp:  # keep the other accepted answers
            outputs += [str(o) for o in (orig.get("outputs") or [])[1:]]
        out.append({"input": inp, "outputs": outputs, "id": orig.get("id") or ""})
    return out


def overlap_warning(demos: list[dict], tests: list[dict]) -> None:
    """Held-out rows must not repeat a demonstration: the prompt shows the demos."""
    seen = {" ".join(str(x.get("input") or "").split()).casefold() for x in demos}
    dup = [i for i, t in enumerate(tests, 1)
           if " ".join(str(t.get("input") or "").split()).casefold() in seen]
    if dup:
        st.warning(f"Held-out row{'s' if len(dup) > 1 else ''} "
                   f"{', '.join(map(str, dup))} repeat{'s' if len(dup) == 1 else ''} a "
                   "demonstration's input. The model sees the demonstrations in every "
                   "prompt, so such a row says nothing about what it learned: change or "
                   "delete it.", icon=":material/warning:")


def import_rows(candidate: dict) -> None:
    """Import held-out rows from a file (CSV/JSONL with input and output columns, or a task
    file's held-out rows); they are added to the rows already there."""
    with st.expander("Import held-out rows from a file"):
        up = st.file_uploader("CSV or JSONL with 'input' and 'output' columns, or a task "
                              "file (NIv2 'Instances')", type=ROW_SUFFIXES,
                              key=state.widget_key("task", "test_upload"))
        if up is None or not st.button("Add these held-out rows", icon=":material/add:"):
            return
        try:
            rows = read_rows(up.getvalue(), up.name)
        except SelfGuideError as exc:
            widgets.show_error(exc)
            return
        state.set_task_draft({**candidate, "test": [*candidate.get("test", []), *rows]})
        state.bump_form("task")
        state.flash("success", f"Added {len(rows)} held-out rows from {up.name}.")
        st.rerun()


def read_rows(data: bytes, filename: str) -> list[dict]:
    """``[{"input", "outputs", "id"}]`` from an uploaded rows file (the reader of
    ``selfguide eval --test``)."""
    from selfguide.task.formats import read_example_rows

    suffix = Path(filename).suffix.lower() or ".csv"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"rows{suffix}"
        path.write_bytes(data)
        rows = read_example_rows(path, what=f"Held-out rows file {filename}")
    return [{"input": r["input"], "outputs": list(r["outputs"]), "id": ""} for r in rows]


# --------------------------------------------------------------------------- load guard

def _blank(d: dict | None) -> bool:
    return not d or (not str(d.get("instruction") or "").strip() and not d.get("demos"))


def unsaved_task(run: str | None) -> dict | None:
    """The editor's task when it is the user's own and saved nowhere (None otherwise):
    not blank, not the current run's saved task, not a shipped example."""
    d = state.task_draft()
    if _blank(d):
        return None
    same = lambda spec: spec is not None and _same(d, spec.to_dict())  # noqa: E731
    if run and same(RunDir.named(run).read_task()):
        return None
    if any(same(_load_example(p)) for p in sgtask.example_tasks().values()):
        return None
    return d


def _same(a: dict, b: dict) -> bool:
    keys = ("name", "instruction", "task_type", "labels", "metric")
    return all(a.get(k) == b.get(k) for k in keys) and \
        [(x.get("input"), x.get("output")) for x in a.get("demos") or []] == \
        [(x.get("input"), x.get("output")) for x in b.get("demos") or []] and \
        len(a.get("test") or []) == len(b.get("test") or [])


def _load_example(path: Path) -> sgtask.TaskSpec | None:
    from selfguide.task import formats

    try:
        return formats.load_task(path)
    except SelfGuideError:
        return None


def request_load(spec: sgtask.TaskSpec, run: str | None, set_task) -> None:
    """Load ``spec`` into the editor, or, when that would lose an unsaved task of the
    user's, keep it pending until :func:`confirm_load` is answered."""
    if unsaved_task(run) is not None and not _same(state.task_draft(), spec.to_dict()):
        state.set_draft("task.pending_load", {"task": spec.to_dict()})
        return
    set_task(spec)


def confirm_load(run: str | None, set_task) -> None:
    """Ask before a pending load replaces the editor's unsaved task; Keep is the default."""
    pending = state.draft("task.pending_load").get("task")
    if not pending:
        return
    mine = unsaved_task(run) or {}
    n_demos, n_test = len(mine.get("demos") or []), len(mine.get("test") or [])
    st.warning(f"Loading **{pending.get('name')}** replaces the task in the editor, "
               f"**{mine.get('name') or 'your task'}** ({n_demos} demonstrations"
               + (f", {n_test} held-out rows" if n_test else "") + "), which is not saved in "
               "any run: it would be lost. Save it to a run first, or replace it.",
               icon=":material/warning:")
    c1, c2 = st.columns(2)
    if c1.button("Keep my task", type="primary", icon=":material/undo:"):
        state.set_draft("task.pending_load", {})
        st.rerun()
    if c2.button(f"Replace it with {pending.get('name')}", icon=":material/delete:"):
        state.set_draft("task.pending_load", {})
        set_task(sgtask.TaskSpec.from_dict(pending))
        st.rerun()
