"""SELF-GUIDE's sources on the Synthesize page (issue 36): generate only, use my inputs, or
mix them; an upload or a path, a preview with the column picker, how many inputs each
source gives; documents whose passages ground the new inputs.

What it does: :func:`intake_form` is the Task page's intake: the user's file of unlabeled
inputs (drop or path), its preview and column picker, and documents, recorded for the run
(``intake.json``). :func:`sources_form` draws the Synthesize page's choice (starting from
the intake) and returns the job's extra options (``{"inputs": path, "column": c, "mix": m,
"documents": path}``; ``{}`` = generate only) or None when the file cannot be used (the
error is shown and Start stays disabled). An upload is saved into the run folder
(``uploads/``, atomically, named by its content hash) so the job reads a file on disk, as
the CLI does.

It does not read inputs into the run or generate anything (the job does, through
``selfguide synthesize --inputs``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import streamlit as st

from selfguide.errors import DatasetError, SelfGuideError
from selfguide.methods.selfguide import documents as docs
from selfguide.methods.selfguide import sources
from selfguide.runs.rundir import RunDir
from studio.app import state, widgets

CHOICES = {"generate": "Generate only", "only": "Use my inputs",
           "fill": "Mix: my inputs, topped up with generated ones"}
UPLOAD_TYPES = ["csv", "jsonl", "json", "txt", "parquet"]


def save_upload(run: str, name: str, data: bytes) -> Path:
    """The uploaded file in ``RUN/uploads/`` (named by its content; written once)."""
    suffix = Path(name).suffix.lower()
    if suffix not in sources.SUFFIXES:
        raise DatasetError(f"Inputs file {name}: unsupported type {suffix or '(none)'!r}.",
                           hint="Upload a .csv, .jsonl, .json, .txt or .parquet file.")
    rd = RunDir.named(run)
    path = rd.path / "uploads" / f"inputs-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    if not path.is_file():
        _check_upload(name, suffix, data)  # a refused upload writes nothing into the run
        rd.write_file(path, data)
    return path


def _check_upload(name: str, suffix: str, data: bytes) -> None:
    """Read the upload from a private temporary file; errors name the uploaded file."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / f"upload{suffix}"
        probe.write_bytes(data)
        try:
            sources.read_table(probe)
        except DatasetError as exc:
            raise DatasetError(exc.message.replace(str(probe), name), hint=exc.hint,
                               ui_hint=exc.ui_hint) from None


@st.cache_data(show_spinner=False, max_entries=8)
def _table(path: str, stamp: tuple) -> tuple[list[dict], list[str]]:
    return sources.read_table(path)


@st.cache_data(show_spinner=False, max_entries=8)
def _given(path: str, column: str, stamp: tuple) -> sources.GivenInputs:
    return sources.read_given(path, column)


@st.cache_data(show_spinner=False, max_entries=4)
def _documents(path: str, stamp: tuple) -> dict:
    d = docs.read_documents([path])
    return {"files": len(d.files), "passages": len(d.passages),
            "first": d.passages[0]["text"]}


def _stamp(path: Path) -> tuple:
    s = path.stat()
    return (s.st_mtime_ns, s.st_size)


def _inputs_path(run: str, form: str = "synth") -> Path | None:
    up = st.file_uploader("Your inputs (CSV, JSONL, JSON list, TXT one per line, Parquet)",
                          type=UPLOAD_TYPES, key=state.widget_key(form, "inputs_upload"))
    typed = st.text_input("...or a path on this machine (a file, or a folder saved with "
                          "datasets' save_to_disk)",
                          key=state.widget_key(form, "inputs_path")).strip()
    if up is not None:
        return save_upload(run, up.name, up.getvalue())
    if not typed:
        return None
    path = Path(typed).expanduser()
    if not path.exists():
        raise DatasetError(f"Inputs file {path}: not found.")
    return path


def _stored(run: str) -> dict:
    """The run's own inputs settings (config.json ``inputs``, or else what the Task page
    took in: ``intake.json``), put into the form the first time it is drawn, so that Start
    resumes the run with them instead of refusing, or starts from the user's file."""
    rd = RunDir.named(run)
    try:
        stored = rd.read_config().get("inputs") or {}
        intake = {} if stored else rd.read_intake()
    except SelfGuideError:  # an unreadable run file: the page reports it elsewhere
        return {}
    if intake:
        stored = {"file": intake.get("file"), "column": intake.get("column"),
                  "mix": "fill" if intake.get("file") else "generate"}
        if intake.get("documents") and state.widget_value("synth", "documents") is None:
            state.set_widget_value("synth", "documents", str(intake["documents"]))
    if stored and state.widget_value("synth", "source") is None:
        state.set_widget_value("synth", "source", stored.get("mix") or "fill")
        if state.widget_value("synth", "inputs_path") is None and stored.get("file"):
            state.set_widget_value("synth", "inputs_path", str(stored["file"]))
    return stored


def _preview(path: Path, stored_column: str | None = None,
             form: str = "synth") -> sources.GivenInputs:
    """The column picker and the first rows of the chosen column."""
    import pandas as pd

    rows, cols = _table(str(path), _stamp(path))
    start = stored_column if stored_column in cols else sources.guess_column(rows, cols)
    guess = cols.index(start) if cols else 0
    column = st.selectbox("Column with the input text", cols, index=guess,
                          key=state.widget_key(form, "inputs_column"))
    given = _given(str(path), column, _stamp(path))
    st.dataframe(pd.DataFrame({"row": given.numbers[:5], column: given.rows[:5]}),
                 hide_index=True, width="stretch")
    return given


def _counts(mix: str, given: sources.GivenInputs, cfg: Any) -> str:
    n = len(given.rows)
    own = f"Your file gives **{n}** inputs" + (
        f" ({given.skipped} blank rows skipped)" if given.skipped else "")
    if mix == "only":
        return (f"{own}; the model labels them and **nothing is generated**. Rows equal "
                f"or near to a held-out evaluation row are dropped.")
    target = cfg.min_inputs or cfg.total_prompts
    more = max(0, target - n)
    gen = (f"generated rounds add about **{more}** more (up to "
           f"{cfg.round_limit * cfg.prompts_per_round} prompts) to reach {target}"
           if more else f"they reach the preset's size ({target}): **nothing is generated**")
    return f"{own}; {gen}."


def save_documents(run: str, files: list[tuple[str, bytes]]) -> Path:
    """Uploaded documents in ``RUN/uploads/documents-<hash>/`` (read first from a private
    temporary folder: a file that cannot be read writes nothing into the run)."""
    import shutil
    import tempfile

    h = hashlib.sha256()
    for name, data in sorted(files):
        h.update(Path(name).name.encode() + b"\0" + hashlib.sha256(data).digest())
    dest = RunDir.named(run).path / "uploads" / f"documents-{h.hexdigest()[:16]}"
    if dest.is_dir():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for name, data in files:
            (folder / Path(name).name).write_bytes(data)
        try:
            docs.read_documents([folder])
        except DatasetError as exc:
            raise DatasetError(exc.message.replace(str(folder) + "/", ""), hint=exc.hint,
                               ui_hint=exc.ui_hint) from None
        staging = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder, staging)
        staging.replace(dest)  # the folder appears whole or not at all
    return dest


def _documents_path(run: str, form: str = "synth") -> Path | None:
    ups = st.file_uploader("Documents to ground new inputs in (.txt, .md, .pdf, .docx; "
                           "optional)", type=["txt", "md", "pdf", "docx"],
                           accept_multiple_files=True,
                           key=state.widget_key(form, "documents_upload"))
    typed = st.text_input("...or a folder or file on this machine",
                          key=state.widget_key(form, "documents")).strip()
    if ups:
        return save_documents(run, [(u.name, u.getvalue()) for u in ups])
    return Path(typed).expanduser() if typed else None


def _documents_option(run: str, form: str = "synth") -> dict | None:
    try:
        p = _documents_path(run, form)
        if p is None:
            return {}
        info = _documents(str(p), _stamp(p) if p.exists() else (0, 0))
    except SelfGuideError as exc:
        widgets.show_error(exc)
        return None
    n = info["passages"]
    st.caption(f"{n} passage{'' if n == 1 else 's'} from {info['files']} document(s); each new "
               f"input is written on one of them. First: {info['first'][:160]}")
    return {"documents": str(p)}


def sources_form(run: str, cfg: Any) -> dict | None:
    """The source choice; the job's extra options, or None when they cannot be used."""
    stored = _stored(run)
    mix = st.radio("Where the inputs come from", list(CHOICES), format_func=CHOICES.get,
                   horizontal=True, key=state.widget_key("synth", "source"))
    options: dict = {}
    if mix != "generate":
        try:
            path = _inputs_path(run)
            if path is None:
                st.info("Upload a file or give a path to use your own inputs.")
                return None
            given = _preview(path, stored.get("column"))
        except SelfGuideError as exc:
            widgets.show_error(exc)
            return None
        st.caption(_counts(mix, given, cfg))
        options = {"inputs": str(path), "column": given.column, "mix": mix}
    if mix == "only":
        return options
    extra = _documents_option(run)
    return None if extra is None else {**options, **extra}


def intake_form(run: str | None) -> None:
    """The Task page's intake: your unlabeled inputs and documents, previewed and recorded
    for the run (the Synthesize page then offers to use them)."""
    st.subheader("Your own inputs (optional)")
    st.caption("Unlabeled inputs you already have (tickets, reviews, a spreadsheet column) "
               "become training inputs: the model labels them as it labels its own, and on "
               "the Synthesize page you choose to use only them or to top them up with "
               "generated ones. Documents make the generated inputs follow your domain.")
    rd = RunDir.named(run) if run else None
    if rd is None or not rd.task_file.is_file():
        st.info("Save the task to a run first; then give your inputs here.")
        return
    try:
        intake = rd.read_intake()
        _synthesized_note(rd)
    except SelfGuideError as exc:
        widgets.show_error(exc)
        intake = {}
    form = f"intake.{run}"  # each run has its own widgets, started from its intake
    for widget, key in (("inputs_path", "file"), ("documents", "documents")):
        if intake.get(key) and state.widget_value(form, widget) is None:
            state.set_widget_value(form, widget, str(intake[key]))
    record: dict = {}
    try:
        path = _inputs_path(run, form)
        if path is not None:
            given = _preview(path, intake.get("column"), form)
            st.caption(f"Your file gives **{len(given.rows)}** inputs" + (
                f" ({given.skipped} blank rows skipped)." if given.skipped else "."))
            record = {"file": str(path), "column": given.column}
    except SelfGuideError as exc:
        widgets.show_error(exc)
        return
    docs_option = _documents_option(run, form)
    if docs_option is None:
        return
    record.update(docs_option)
    _record_buttons(run, rd, record, intake)


def _synthesized_note(rd: RunDir) -> None:
    """Where the run was synthesized already, what recording inputs now changes."""
    if not rd.stage_status("synthesize"):
        return
    made = (rd.read_config().get("inputs") or {}).get("file")
    st.caption("This run has been synthesized " + (f"from {made}" if made else
               "from generated inputs") + ": what you record here is used when its "
               "synthesis starts again (Synthesize: *Discard data generated earlier*), or "
               "save the task to a new run.")


def _record_buttons(run: str, rd: RunDir, record: dict, intake: dict) -> None:
    """*Use these for this run* (writes ``intake.json``) and *Forget them*."""
    c1, c2 = st.columns([1, 1])
    if c1.button("Use these for this run", icon=":material/input:",
                 disabled=not record or record == intake):
        rd.write_intake(record)
        for name in ("source", "inputs_path", "inputs_column", "documents"):
            st.session_state.pop(state.widget_key("synth", name), None)  # start from it
        state.flash("success", f"Recorded for run '{run}': the Synthesize page offers "
                    "them (use only them, or mix with generated inputs).")
        st.rerun()
    if intake and c2.button("Forget them", icon=":material/backspace:"):
        rd.write_intake({})
        for name in ("inputs_path", "documents"):
            st.session_state.pop(state.widget_key(f"intake.{run}", name), None)
        st.session_state.pop(state.widget_key("synth", "source"), None)
        state.flash("info", f"Run '{run}' no longer starts from your own inputs.")
        st.rerun()
    if intake and record == intake:
        st.caption("Recorded for this run: the Synthesize page starts from them.")


__all__ = ["CHOICES", "intake_form", "save_documents", "save_upload", "sources_form"]
