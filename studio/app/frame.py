"""The studio's frame: the page list, the sidebar, and the router that runs every page
inside them.

What it does: declares the pages (``studio/pages/*.py``, by absolute path so that links
work whichever script Streamlit started with), draws the sidebar (current run: pick, or
create / rename on the Runs page; the loaded model; the run's running jobs) and routes
with ``st.navigation``. ``streamlit_app.py`` calls :func:`main`; every page first calls
:func:`ensure`, which is a no-op inside the frame and, for a page started on its own
(``streamlit run studio/pages/task.py``, ``AppTest.from_file`` on a page), runs the frame
with that page selected instead.

What it does not do: any work of a page, or hold state beyond the pointers in
``studio.app.state``. It touches no Streamlit internals: the pages live outside a top-level
``pages/`` folder, so Streamlit never treats them as a legacy multipage app.
"""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from selfguide.errors import RunFileError
from selfguide.runs import store, workspace
from studio.app import messages, resources, state

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"
# A local file: an emoji or :material/…: page icon makes the browser fetch the favicon from
# an external host, which fails offline (issue 15, item 8).
FAVICON = Path(__file__).resolve().parents[1] / "assets" / "favicon.png"
# (file stem, title, icon) per section, in navigation order; the first page is the default.
SECTIONS = {
    "Build a task expert": [("model", "1 · Model", ":material/memory:"),
                            ("task", "2 · Task", ":material/edit_note:"),
                            ("synthesize", "3 · Synthesize", ":material/auto_awesome:"),
                            ("filter", "4 · Filter", ":material/filter_alt:"),
                            ("finetune", "5 · Finetune", ":material/model_training:"),
                            ("compare", "6 · Compare", ":material/compare_arrows:")],
    "Manage": [("runs", "Runs", ":material/folder_open:")],
}
_NONE = "— no run —"
_FRAME = threading.local()  # each session's script runs in its own thread


def page_path(name: str) -> str:
    """The script of page ``name`` (``"task"``), for ``st.page_link``/``st.switch_page``."""
    return str(PAGES_DIR / f"{name}.py")


def _pages(default: str) -> dict[str, list]:
    return {section: [st.Page(page_path(n), title=t, icon=i, default=n == default)
                      for n, t, i in pages] for section, pages in SECTIONS.items()}


def _on_pick() -> None:
    choice = state.widget_value("sidebar", "run")
    state.set_run(None if choice in (None, _NONE) else choice)


def _model_caption() -> None:
    st.subheader("Model")
    loaded = state.loaded_model() or resources.cached_model_summary()
    if loaded:
        info = loaded["info"]
        st.caption(f"{info.get('ref', loaded['config'].get('model'))} · "
                   f"{info.get('precision', '?')} · {info.get('device', '?')}")
    elif state.model_config().get("backend") == "openai":
        cfg = state.model_config()
        st.caption(f"chosen: {cfg.get('model')}, generated through {cfg.get('base_url')} "
                   "(not connected here; jobs connect themselves)")
    else:
        st.caption(f"chosen: {state.model_config().get('model')} (not loaded here; jobs "
                   "load it themselves)")


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
        st.page_link(page_path("runs"), label="New, rename, delete, export…",
                     icon=":material/folder_open:")
        if current:
            active = workspace.active_jobs(current)
            if active:
                st.caption(":material/pending: running: " + ", ".join(active))
        _model_caption()
    state.sync_url()


def main(default: str = "model") -> None:
    """The whole app: page config, navigation, sidebar, then the selected page."""
    st.set_page_config(page_title="selfguide studio", page_icon=str(FAVICON),
                       layout="wide")
    page = st.navigation(_pages(default))
    sidebar()
    _FRAME.on = True
    try:
        page.run()
    except RunFileError as exc:  # a damaged run file on any page: which one, and the fix
        st.error(messages.page_text(exc), icon=":material/error:")
    finally:
        _FRAME.on = False


def ensure(page_file: str) -> None:
    """First call of every page: inside the frame, nothing; a page started on its own
    runs the frame with itself selected, then stops its own (frameless) run."""
    if getattr(_FRAME, "on", False):
        return
    main(default=Path(page_file).stem)
    st.stop()
