"""Session-state keys of the studio: the only module that names them.

What it does: reads and writes the few small, picklable pointers a browser session keeps
(the current run name, the chosen model config, the task draft, per-page drafts of
settings), mirrors the current run into the URL (``?run=NAME``) so that a browser refresh
re-attaches to the same run, and derives widget keys.

What it does not do: hold data. Candidates, datasets, metrics and job status live in the
run directory (``selfguide.runs.store``); loaded models live in ``st.cache_resource``
(``studio.app.resources``). Everything stored here is a ``str``/``dict``/``list`` so that
``runner.enforceSerializableSessionState = true`` holds.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from selfguide.errors import InvalidRunName, RunNotFound
from selfguide.runs import store
from selfguide.runs.rundir import RunDir

_RUN = "sg.run"
RUN_KEY = _RUN  # public for tests that preset the current run
_MODEL_CFG = "sg.model_cfg"
_MODEL_LOADED = "sg.model_loaded"
_TASK_DRAFT = "sg.task_draft"
_DRAFT = "sg.draft."          # + form name: dict of setting values
_FLASH = "sg.flash"            # one-shot message shown after a rerun
_CONFIRM = "sg.confirm."       # + action name: the object a confirmation is pending for
_FORMV = "sg.formv"            # {form: version} of settings forms (see bump_form)
_QUERY_RUN = "run"


# --------------------------------------------------------------------------- current run

def current_run() -> str | None:
    """The selected run name, or None. A fresh session picks it up from ``?run=``."""
    name = st.session_state.get(_RUN)
    if name is None:
        qp = st.query_params.get(_QUERY_RUN)
        if qp:
            try:
                RunDir.named(qp, must_exist=True)
            except (InvalidRunName, RunNotFound):
                qp = None
            name = qp
            st.session_state[_RUN] = name
    if name is not None and name not in store.list_runs():
        # Deleted (by another tab or the CLI): forget it rather than fail on every page.
        st.session_state[_RUN] = name = None
    return name


def set_run(name: str | None) -> None:
    st.session_state[_RUN] = name
    sync_url()


def sync_url() -> None:
    """Mirror the current run into ``?run=`` (page switches drop query parameters)."""
    name = st.session_state.get(_RUN)
    if name:
        if st.query_params.get(_QUERY_RUN) != name:
            st.query_params[_QUERY_RUN] = name
    elif _QUERY_RUN in st.query_params:
        del st.query_params[_QUERY_RUN]


# --------------------------------------------------------------------------- model

def model_config() -> dict:
    """The model settings chosen on the Model page (a ``ModelConfig`` dict)."""
    return dict(st.session_state.get(_MODEL_CFG) or {"model": "embedded"})


def set_model_config(cfg: dict) -> None:
    st.session_state[_MODEL_CFG] = dict(cfg)


def loaded_model() -> dict | None:
    """``{"config": ..., "info": ...}`` of the model loaded in this session, if any."""
    return st.session_state.get(_MODEL_LOADED)


def set_loaded_model(cfg: dict, info: dict) -> None:
    st.session_state[_MODEL_LOADED] = {"config": dict(cfg), "info": dict(info)}


# --------------------------------------------------------------------------- drafts

def task_draft() -> dict | None:
    """The task being edited on the Task page (``TaskSpec.to_dict()`` shape) or None."""
    return st.session_state.get(_TASK_DRAFT)


def set_task_draft(d: dict | None) -> None:
    st.session_state[_TASK_DRAFT] = d


def draft(form: str) -> dict:
    """Saved values of a settings form (survive page switches; widgets state does not)."""
    return dict(st.session_state.get(_DRAFT + form) or {})


def set_draft(form: str, values: dict) -> None:
    st.session_state[_DRAFT + form] = dict(values)


def widget_key(form: str, name: str, version: int = 0) -> str:
    """The key of a widget; a new ``version`` makes a new widget (how forms are reset)."""
    return f"w.{form}.v{version}.{name}" if version else f"w.{form}.{name}"


def form_version(form: str) -> int:
    return int((st.session_state.get(_FORMV) or {}).get(form, 0))


def bump_form(form: str) -> int:
    """Reset every widget of ``form`` to its ``value=`` (from the draft) on the next run.

    Popping widget keys is not enough: the browser sends the old values back; new keys
    make new widgets.
    """
    versions = dict(st.session_state.get(_FORMV) or {})
    versions[form] = int(versions.get(form, 0)) + 1
    st.session_state[_FORMV] = versions
    return versions[form]


def widget_value(form: str, name: str, default: Any = None) -> Any:
    return st.session_state.get(widget_key(form, name), default)


def set_widget_value(form: str, name: str, value: Any) -> None:
    st.session_state[widget_key(form, name)] = value


# --------------------------------------------------------------------------- messages

def flash(kind: str, text: str) -> None:
    """Queue a message (``success``/``info``/``warning``/``error``) for the next run."""
    st.session_state[_FLASH] = [kind, text]


def pop_flash() -> tuple[str, str] | None:
    v = st.session_state.pop(_FLASH, None)
    return (v[0], v[1]) if v else None


def pending_confirm(action: str) -> str | None:
    return st.session_state.get(_CONFIRM + action)


def set_pending_confirm(action: str, target: str | None) -> None:
    st.session_state[_CONFIRM + action] = target
