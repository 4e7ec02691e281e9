"""Synthesize page: pick the method and its settings, start/stop the job, watch a live preview."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from selfguide import methods
from selfguide.errors import CorruptFile, SelfGuideError
from selfguide.runs.rundir import RunDir
from selfguide.settings.fields import ModelConfig, from_dict
from studio.app import frame, state, widgets
from studio.app import jobs as sjobs
from studio.views import methods as method_views
from studio.views import model as model_views
from studio.views import synthesize as synth

frame.ensure(__file__)  # a page started on its own runs inside the frame

st.title("Synthesize")
subtitle = st.empty()  # describes the method selected (below, once the run is known)
subtitle.caption(methods.default().subtitle)
widgets.show_flash()
run = widgets.require_run("Synthesis")
run_dir = RunDir.named(run)
choices = synth.choices()
picked = state.widget_value("synth", "method")
subtitle.caption(methods.get(picked if picked in choices else synth.run_method(run_dir)).subtitle)

name = st.radio("Method", list(choices), format_func=choices.get,
                index=list(choices).index(synth.run_method(run_dir)),
                horizontal=True, key=state.widget_key("synth", "method"))
method = methods.get(name)
parts = method_views.parts(method)
stage = method.stage
if method.needs_task and not run_dir.task_file.is_file():
    st.warning("This run has no task yet. Define one on the Task page first.")
    st.page_link(frame.page_path("task"), label="Go to Task", icon=":material/edit_note:")
    st.stop()

jstat = sjobs.status(run, stage)
running = sjobs.is_active(jstat)

with st.expander("Settings", expanded=not running):
    settings = parts.settings_form(run, stage)
    overwrite = st.checkbox("Discard data generated earlier in this run with other settings",
                            key=state.widget_key("synth", "overwrite"),
                            help="Without this, a run only resumes or extends generation with "
                                 "the settings it started with.")

model_cfg = from_dict(ModelConfig, state.model_config())
st.caption(f"Model: **{model_cfg.model}** ({model_cfg.precision}); change it on the Model page.")
if not running and synth.has_generated(run_dir):
    model_views.synthesis_model_note(run_dir)
fits = running or model_cfg.backend != "hf" or model_views.show_estimate(model_cfg, quiet=True)

blocker = None if running else synth.start_blocker(run_dir, name, stage)
c1, c2 = st.columns([1, 4])
if c1.button("Start", type="primary", icon=":material/play_arrow:",
             disabled=running or settings is None or blocker is not None or not fits):
    if not parts.before_start(run_dir):
        st.stop()
    argv = parts.job_argv(run, settings, model_cfg, overwrite)
    if widgets.start_job(run, stage, argv):
        st.rerun()
if running:
    c2.caption("A job is running: settings are locked until it ends or you cancel it.")
elif blocker is not None:
    c2.warning(blocker[0], icon=":material/block:")
    if blocker[1] and (new_run := synth.new_run_form(run_dir, name)):
        state.set_run(new_run)
        state.flash("success", f"Created run '{new_run}' with the same task.")
        st.rerun()

widgets.job_panel(run, stage, title="Synthesis job", extra=synth.live_preview(run_dir, parts))

cand = run_dir.candidates_file  # a count of this method's data, never another's
if cand.is_file() and not running and synth.run_dir_method(run_dir) in (None, name):
    try:
        n = len(pd.read_parquet(cand, columns=["id"]))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a torn or foreign file
        widgets.show_error(CorruptFile(f"{cand} cannot be read ({exc}).",
                                       hint="Delete it; 'selfguide filter' rebuilds it."))
    else:
        for level, msg in parts.ready_lines(run_dir, n):
            getattr(st, level)(msg)
        st.page_link(frame.page_path("filter"), label="Next: filter the candidates",
                     icon=":material/arrow_forward:")
try:
    log = sjobs.status(run, stage)
    if getattr(log, "log_tail", "") and sjobs.state_of(log) != "none":
        with st.expander("Job log (last lines)"):
            st.code(log.log_tail, language=None)
except SelfGuideError as exc:
    widgets.show_error(exc)
