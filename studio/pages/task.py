"""Task page: load an example, import a file or write a task; validate; save it to a run."""

from __future__ import annotations

import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.runs import workspace
from selfguide.runs.rundir import RunDir
from selfguide.task import formats as task_formats
from selfguide.task import spec as sgtask
from studio.app import frame, state, widgets
from studio.views import structure as structure_view
from studio.views import task as task_editor
from studio.views import task_rows
from studio.views.methods import selfguide_sources as sources_view

frame.ensure(__file__)  # a page started on its own runs inside the frame

st.title("Task")
st.caption("Step 2 of 6 · Say what the expert should do: an instruction, at least 3 "
           "input → output demonstrations, and for classification the label set; "
           "optionally held-out rows to score the result.")
widgets.show_flash()

# --------------------------------------------------------------------------- import
# Example task files shipped with the package (selfguide/data), by file name.
examples = {p.name: p for p in sgtask.example_tasks().values()}
src_tabs = st.tabs(["Example task", "Import a file"])
with src_tabs[0]:
    if examples:
        c1, c2 = st.columns([3, 1])
        names = list(examples)
        pick = c1.selectbox("Example", names, key=state.widget_key("task", "example"),
                            index=names.index(task_editor.DEFAULT_EXAMPLE)
                            if task_editor.DEFAULT_EXAMPLE in names else 0,
                            label_visibility="collapsed")
        if c2.button("Load example", icon=":material/upload_file:", type="primary"):
            try:  # asks first when it would replace an unsaved task of the user's
                task_rows.request_load(task_formats.load_task(examples[pick]),
                                       state.current_run(), task_editor.set_task)
                st.rerun()
            except SelfGuideError as exc:
                widgets.show_error(exc)
    else:
        st.info("No example tasks are installed.")
with src_tabs[1]:
    up = st.file_uploader("Task file: our JSON/YAML, a Natural Instructions v2 task, or a "
                          "CSV/JSONL of input,output rows", type=["json", "yaml", "yml", "csv",
                                                                   "jsonl"],
                          key=state.widget_key("task", "upload"))
    if up is not None and st.button("Import", icon=":material/file_open:"):
        try:
            task_rows.request_load(task_formats.parse_task_bytes(up.getvalue(), up.name),
                                   state.current_run(), task_editor.set_task)
            st.rerun()
        except SelfGuideError as exc:
            widgets.show_error(exc)

# --------------------------------------------------------------------------- editor
run = state.current_run()
task_rows.confirm_load(run, task_editor.set_task)
d = state.task_draft()
if d is None and run:
    d = RunDir.named(run).read_task_dict()  # as saved: the editor validates
spec = task_editor.validate(task_editor.editor(d if d is not None else task_editor.EMPTY))
structure_view.show_template(spec)

# --------------------------------------------------------------------------- save
st.subheader("Use this task")
into, sure = task_editor.save_choice(spec, run)  # a new run unless replacing is confirmed
if st.button("Save task to run", type="primary", icon=":material/save:",
             disabled=spec is None or not sure):
    try:
        target = workspace.save_task(spec, into)
        state.set_run(target)
        state.flash("success", f"Task '{spec.name}' saved to run '{target}'.")
        st.rerun()
    except SelfGuideError as exc:
        widgets.show_error(exc)
# --------------------------------------------------------------------------- your inputs
sources_view.intake_form(run)  # unlabeled inputs and documents the run starts from

if run and RunDir.named(run).task_file.is_file():
    st.page_link(frame.page_path("synthesize"), label="Next: synthesize training data",
                 icon=":material/arrow_forward:")
