"""selfguide studio: the frame and router of the Streamlit app (``make studio``).

What it does: sets the page config, draws the sidebar (current run: pick, or create /
rename on the Runs page; the loaded model; the run's running jobs) and routes with
``st.navigation`` over ``studio/pages/*.py``. The pages live outside a top-level ``pages/``
folder, so Streamlit never treats them as a legacy multipage app: every address, a deep link
or a refresh included, runs this frame first. What it does not do: any work of a page, or
hold state beyond the pointers in ``studio.state``.
"""

from __future__ import annotations

import streamlit as st

from selfguide import store, workspace
from studio import resources, state

st.set_page_config(page_title="selfguide studio", page_icon=":material/school:",
                   layout="wide")

PAGES = {
    "Build a task expert": [
        st.Page("studio/pages/model.py", title="1 · Model", icon=":material/memory:",
                default=True),
        st.Page("studio/pages/task.py", title="2 · Task", icon=":material/edit_note:"),
        st.Page("studio/pages/synthesize.py", title="3 · Synthesize",
                icon=":material/auto_awesome:"),
        st.Page("studio/pages/filter.py", title="4 · Filter", icon=":material/filter_alt:"),
        st.Page("studio/pages/finetune.py", title="5 · Finetune",
                icon=":material/model_training:"),
        st.Page("studio/pages/compare.py", title="6 · Compare",
                icon=":material/compare_arrows:"),
    ],
    "Manage": [st.Page("studio/pages/runs.py", title="Runs", icon=":material/folder_open:")],
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
        st.page_link("studio/pages/runs.py", label="New, rename, delete, export…",
                     icon=":material/folder_open:")
        if current:
            active = workspace.active_jobs(current)
            if active:
                st.caption(":material/pending: running: " + ", ".join(active))
        st.subheader("Model")
        loaded = state.loaded_model() or resources.cached_model_summary()
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
