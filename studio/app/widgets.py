"""Reusable studio widgets: settings forms driven by config dataclasses, the live job panel,
the "pick a run first" guard, and safe rendering of model text.

What it does: turns a frozen config dataclass (``selfguide.configs.*``) into widgets whose
``help=`` is the field's help text (the same text as ``--help`` and the README), validates
the values through the dataclass itself, and draws a job's status/progress/cancel panel that
refreshes itself (``st.fragment(run_every=…)``) while the job runs.

What it does not do: decide settings, run stages or load models. Model and dataset text is
data, not markup: it is shown with ``st.code``/``st.text``/``st.dataframe`` only, never as
HTML.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.settings import fields as sgconfig
from studio.app import frame, messages, state
from studio.app import jobs as sjobs

POLL_S = 2.0
# Float fields whose name contains one of these are fractions in [0, 1]: drawn as sliders.
_FRACTION_HINTS = ("share", "threshold", "ratio", "frac", "prob", "rouge", "similarity",
                   "top_p", "split", "dropout")


# --------------------------------------------------------------------------- errors / guards

def show_error(exc: BaseException) -> None:
    """A user-facing failure: its message (with hint, in the pages' words), never a
    traceback."""
    st.error(messages.page_text(exc), icon=":material/error:")


def require_run(what: str = "this page") -> str:
    """The current run name; otherwise a helpful message and stop the page."""
    run = state.current_run()
    if run is None:
        st.info(f"No run selected. {what} works on a run: pick one in the sidebar, or go to "
                "**Task** to load an example task and create a run.",
                icon=":material/info:")
        st.page_link(frame.page_path("task"), label="Go to Task", icon=":material/edit_note:")
        st.stop()
    return run


def show_text(text: Any, *, label: str | None = None) -> None:
    """Model or user text, shown verbatim as text (no Markdown, no HTML)."""
    if label:
        st.caption(label)
    st.code("" if text is None else str(text), language=None, wrap_lines=True)


# --------------------------------------------------------------------------- config forms

def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def config_form(cls: type, form: str, *, base: Any = None, include: Iterable[str] | None = None,
                exclude: Iterable[str] = (), sliders: dict[str, tuple] | None = None,
                columns: int = 2, labels: dict[str, str] | None = None,
                disabled: dict[str, str] | None = None) -> dict:
    """Draw one widget per field of ``cls`` and return ``{field: value}``.

    Initial values come from the saved draft of ``form``, else ``base`` (an instance or a
    dict), else the field default. ``sliders`` maps field names to ``(min, max, step)``;
    ``disabled`` maps fields that cannot change the result now to the reason, shown first
    in the (disabled) widget's help. The returned dict is saved as the draft so values
    survive page switches.
    """
    hints = typing.get_type_hints(cls)
    include = list(include) if include is not None else None
    exclude = set(exclude)
    sliders = sliders or {}
    labels = labels or {}
    base_d = dataclasses.asdict(base) if dataclasses.is_dataclass(base) else dict(base or {})
    saved = state.draft(form)
    fields = [f for f in dataclasses.fields(cls)
              if f.name not in exclude and (include is None or f.name in include)]
    if include is not None:
        fields.sort(key=lambda f: include.index(f.name))
    cols = st.columns(columns) if columns > 1 else [st.container()]
    values: dict[str, Any] = {}
    for i, f in enumerate(fields):
        init = saved.get(f.name, base_d.get(f.name, _default(f)))
        with cols[i % len(cols)]:
            values[f.name] = _field_widget(f, hints[f.name], init, form,
                                           sliders.get(f.name), labels.get(f.name),
                                           (disabled or {}).get(f.name))
    state.set_draft(form, {**saved, **values})
    return values


def preset_form(cls: type, form: str, presets: dict[str, dict | None], *, page: str,
                help: str, default: str | None = None, **form_kw: Any) -> dict:
    """A preset picker over :func:`config_form`: picking a preset resets the form to it.

    ``presets`` maps names to field overrides (``None`` = keep what is in the form);
    ``default`` is the preset shown first (else the first one). The first visit fills the
    draft from the preset shown. Returns the form's values.
    """
    def _apply() -> None:
        name = state.widget_value(page, "preset")
        if presets.get(name) is not None:
            state.set_draft(form, dict(presets[name]))
            state.bump_form(form)

    names, key = list(presets), state.widget_key(page, "preset")
    # A value already in the session (picked, or set by the page) wins; passing a default
    # as well would make Streamlit warn on the page.
    first = names.index(default) if default in names and key not in st.session_state else 0
    name = st.selectbox("Preset", names, key=key, index=first, on_change=_apply, help=help)
    if not state.draft(form):
        state.set_draft(form, dict(presets.get(name) or {}))
    return config_form(cls, form, **form_kw)


def _field_widget(f: dataclasses.Field, tp: Any, init: Any, form: str,
                  slider: tuple | None, label: str | None, off: str | None = None) -> Any:
    help_ = f.metadata.get("help") or None
    if off:
        help_ = f"**Does nothing now:** {off}\n\n{help_ or ''}"
    choices = f.metadata.get("choices")
    key = state.widget_key(form, f.name, state.form_version(form))
    return _widget(f, tp, init, key, help_, choices, slider, label, bool(off))


def _widget(f: dataclasses.Field, tp: Any, init: Any, key: str, help_: str | None,
            choices: Any, slider: tuple | None, label: str | None, off: bool) -> Any:
    label = label or f.name.replace("_", " ")
    tp, optional = _unwrap_optional(tp)
    if choices:
        opts = list(choices)
        idx = opts.index(init) if init in opts else 0
        return st.selectbox(label, opts, index=idx, help=help_, key=key, disabled=off)
    if tp is bool:
        return st.checkbox(label, value=bool(init), help=help_, key=key, disabled=off)
    if tp is int:
        if slider:
            lo, hi, step = slider
            v = int(init if init is not None else lo)
            return st.slider(label, int(lo), int(hi), min(max(v, int(lo)), int(hi)),
                             step=int(step), help=help_, key=key, disabled=off)
        return st.number_input(label, value=None if init is None else int(init), step=1,
                               help=help_, key=key, disabled=off,
                               placeholder="none" if optional else None)
    if tp is float:
        is_fraction = slider is None and init is not None and 0.0 <= float(init) <= 1.0 and \
            any(h in f.name for h in _FRACTION_HINTS)
        if slider or is_fraction:
            lo, hi, step = slider or (0.0, 1.0, 0.01)
            v = float(init if init is not None else lo)
            return st.slider(label, float(lo), float(hi), min(max(v, float(lo)), float(hi)),
                             step=float(step), help=help_, key=key, disabled=off)
        return st.number_input(label, value=None if init is None else float(init),
                               format="%g", help=help_, key=key, disabled=off,
                               placeholder="none" if optional else None)
    if typing.get_origin(tp) is tuple or tp is tuple:
        text = "\n".join(str(x) for x in (init or ()))
        raw = st.text_area(label, value=text, help=(help_ or "") + " (one per line)",
                           key=key, disabled=off, height=120)
        return tuple(x.strip() for x in raw.splitlines() if x.strip())
    text = st.text_input(label, value="" if init is None else str(init), help=help_,
                         key=key, disabled=off)
    return None if optional and text.strip() == "" else text


def build_config(cls: type, values: dict) -> Any | None:
    """``cls`` validated from ``values``; on a user error show it and return None."""
    try:
        return sgconfig.from_dict(cls, values)
    except SelfGuideError as exc:
        show_error(exc)
        return None


# --------------------------------------------------------------------------- job panel

def job_panel(run: str, stage: str, *, title: str,
              extra: Callable[[list[dict]], None] | None = None,
              can_cancel: bool = True) -> str:
    """Status, progress bar, ETA, tokens/s and Cancel for a job; returns its state.

    While the job runs, the panel is a fragment that reruns itself every ``POLL_S``
    seconds and reads the job's files again (a refreshed browser finds the same job). When
    the job ends, the whole page reruns once so that it can show the results.
    """
    first = sjobs.status(run, stage)
    watched = sjobs.is_watched(first)

    @st.fragment(run_every=POLL_S if watched else None)
    def _panel() -> None:
        stat = sjobs.status(run, stage)
        jstate = sjobs.state_of(stat)
        if watched and not sjobs.is_watched(stat):
            st.rerun()  # ended while we watched: redraw the page with the results
        evs = sjobs.events(run, stage) if jstate != "none" else []
        with st.container(border=True):
            head, btn = st.columns([4, 1])
            head.markdown(f"**{title}** — job state: `{jstate}`")
            if jstate in sjobs.ACTIVE_STATES or sjobs.is_silent(stat):
                if sjobs.is_silent(stat):  # still watched: a late heartbeat may come
                    st.warning(messages.page_words(
                        f"{sjobs.error_of(stat)} This panel keeps watching: it goes on "
                        "if the worker was only busy."), icon=":material/hourglass_top:")
                view = sjobs.progress_view(stat, evs, stage)
                st.progress(view["fraction"], text=view["text"])
                if can_cancel and btn.button("Cancel", key=f"cancel.{stage}",
                                             icon=":material/stop:"):
                    try:
                        sjobs.cancel(run, stage)
                        st.toast(f"{sjobs.stage_title(stage)} is being cancelled…")
                    except SelfGuideError as exc:
                        show_error(exc)
            elif jstate in sjobs.DONE_STATES:
                st.progress(1.0, text=sjobs.done_text(stat, evs))
            elif jstate == "cancelled":
                st.info(f"{sjobs.stage_title(stage)} was cancelled.", icon=":material/info:")
            elif jstate in sjobs.BAD_STATES:
                msg = sjobs.error_of(stat) or f"The {stage} job ended: {jstate}."
                if jstate == "interrupted":
                    msg += "\nThe worker stopped without finishing (crash or restart). " \
                           "Start it again to resume from what is on disk."
                st.error(messages.page_words(msg), icon=":material/error:")
            if extra is not None:
                extra(evs)

    _panel()
    return sjobs.state_of(first)


def start_job(run: str, stage: str, argv: list[str]) -> bool:
    """Start a job, showing 'already running' or any other user error; True if started."""
    try:
        sjobs.start(run, stage, argv)
    except SelfGuideError as exc:
        show_error(exc)
        return False
    state.flash("success", f"{sjobs.stage_title(stage)} started for run '{run}'.")
    return True


def show_flash() -> None:
    msg = state.pop_flash()
    if msg:
        getattr(st, msg[0], st.info)(msg[1])
