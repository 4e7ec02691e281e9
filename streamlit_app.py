"""selfguide studio: the frame and router of the Streamlit app (``make studio``).

What it does: sets the page config, draws the sidebar (current run: pick / create /
rename; the loaded model; the run's running jobs) and routes with ``st.navigation`` over
``pages/*.py``. What it does not do: any work of a page, or hold state beyond the pointers in
``studio.state``.
"""

from __future__ import annotations

import streamlit as st

from selfguide import store
from selfguide.errors import SelfGuideError
from studio import runs as sruns
from studio import state, widgets

st.set_page_config(page_title="selfguide studio", page_icon=":material/school:",
                   layout="wide")

PAGES = {
    "Build a task expert": [
        st.Page("pages/model.py", title="1 · Model", icon=":material/memory:", default=True),
        st.Page("pages/task.py", title="2 · Task", icon=":material/edit_note:"),
        st.Page("pages/synthesize.py", title="3 · Synthesize", icon=":material/auto_awesome:"),
        st.Page("pages/filter.py", title="4 · Filter", icon=":material/filter_alt:"),
        st.Page("pages/finetune.py", title="5 · Finetune", icon=":material/model_training:"),
        st.Page("pages/compare.py", title="6 · Compare", icon=":material/compare_arrows:"),
    ],
    "Manage": [st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:")],
}

_NONE = "— no run —"


def _on_pick() -> None:
    choice = state.widget_value("sidebar", "run")
    state.set_run(None if choice in (None, _NONE) else choice)


def sidebar() -> None:
    with st.sidebar:
        st.subheader("Run")
        current = state.current_run()
        options = [_NONE, *store.list_runs()]
        state.set_widget_value("sidebar", "run", current if current in options else _NONE)
        st.selectbox("Current run", options, key=state.widget_key("sidebar", "run"),
                     on_change=_on_pick,
                     help="Every page works on this run; its files are in the workspace "
                          "folder runs/<name>/.")
        with st.popover("New / rename", icon=":material/add:", width="stretch"):
            name = st.text_input("Run name", key=state.widget_key("sidebar", "new_name"),
                                 placeholder="e.g. sentiment-1")
            c1, c2 = st.columns(2)
            if c1.button("Create", key="sidebar.create", disabled=not name):
                try:
                    sruns.create(name.strip())
                    state.set_run(name.strip())
                    st.rerun()
                except SelfGuideError as exc:
                    widgets.show_error(exc)
            if c2.button("Rename current", key="sidebar.rename",
                         disabled=not (name and current)):
                try:
                    state.set_run(sruns.rename(current, name.strip()))
                    st.rerun()
                except SelfGuideError as exc:
                    widgets.show_error(exc)
        if current:
            active = sruns.active_jobs(current)
            if active:
                st.caption(":material/pending: running: " + ", ".join(active))
        st.subheader("Model")
        loaded = state.loaded_model()
        if loaded:
            info = loaded["info"]
            st.caption(f"{info.get('ref', loaded['config'].get('model'))} · "
                       f"{info.get('precision', '?')} · {info.get('device', '?')}")
        else:
            st.caption(f"chosen: {state.model_config().get('model')} (not loaded here; jobs "
                       "load it themselves)")
    state.sync_url()


page = st.navigation(PAGES)
sidebar()
page.run()
