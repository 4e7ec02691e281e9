"""Runs page: every run with status, task, model, kept examples and metrics; open, delete
(with confirmation), export."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.runs import store, workspace
from studio.app import frame, state, widgets
from studio.views import runs as sruns

frame.ensure(__file__)  # a page started on its own runs inside the frame

st.title("Runs")
st.caption(f"Everything lives on disk in {store.runs_dir()}; the CLI (`selfguide runs`) sees "
           "the same runs.")
widgets.show_flash()

with st.expander("New run / rename", icon=":material/add:",
                 expanded=not store.list_runs()):
    name = st.text_input("Run name", key=state.widget_key("runs", "new_name"),
                         placeholder="e.g. sentiment-1",
                         help="1-64 letters, digits, '.', '_' or '-'; starts with a letter "
                              "or digit.")
    current = state.current_run()
    b1, b2 = st.columns(2)
    if b1.button("Create run", icon=":material/add:"):
        try:
            workspace.create_run(name.strip())
            state.set_run(name.strip())
            state.flash("success", f"Created run '{name.strip()}'; it is now the current run.")
            st.rerun()
        except SelfGuideError as exc:
            widgets.show_error(exc)
    if b2.button("Rename current run", icon=":material/edit:", disabled=current is None):
        try:
            state.set_run(workspace.rename_run(current, name.strip()))
            st.rerun()
        except SelfGuideError as exc:
            widgets.show_error(exc)

rows = sruns.summaries()
if not rows:
    st.info("No runs yet. Load an example task on the **Task** page to create one.")
    st.page_link(frame.page_path("task"), label="Go to Task", icon=":material/edit_note:")
    st.stop()

df = pd.DataFrame(rows)
df["updated"] = df["updated"].map(lambda t: time.strftime("%Y-%m-%d %H:%M",
                                                          time.localtime(t)))
current = state.current_run()
df.insert(0, "current", df["run"] == current)
st.dataframe(df, hide_index=True, width="stretch",
             column_config={"current": st.column_config.CheckboxColumn("current"),
                            "kept": st.column_config.NumberColumn("kept examples")})

names = [r["run"] for r in rows]
pick = st.selectbox("Run", names, index=names.index(current) if current in names else 0,
                    key=state.widget_key("runs", "pick"))
c1, c2, c3 = st.columns(3)
if c1.button("Open", type="primary", icon=":material/folder_open:"):
    state.set_run(pick)
    state.flash("success", f"Opened run '{pick}'.")
    st.switch_page(sruns.next_page(pick))
c2.download_button("Export (zip)", lambda: workspace.export_zip(pick), file_name=f"{pick}.zip",
                   mime="application/zip", icon=":material/download:",
                   help="Task, config, candidates, dataset, adapter and evaluation "
                        "(no checkpoints); built when you click.")
if c3.button("Delete…", icon=":material/delete:"):
    state.set_pending_confirm("delete", pick)
    st.rerun()

target = state.pending_confirm("delete")
if target:
    with st.container(border=True):
        st.warning(f"Delete run **{target}** and all its files? This cannot be undone.")
        typed = st.text_input("Type the run name to confirm",
                              key=state.widget_key("runs", "confirm"))
        y, n = st.columns(2)
        if y.button("Delete for good", type="primary", disabled=typed != target):
            try:
                workspace.delete_run(target)
                if current == target:
                    state.set_run(None)
                state.set_pending_confirm("delete", None)
                state.flash("success", f"Deleted run '{target}'.")
                st.rerun()
            except SelfGuideError as exc:
                widgets.show_error(exc)
        if n.button("Cancel", key="runs.cancel_delete"):
            state.set_pending_confirm("delete", None)
            st.rerun()
