"""Compare page: evaluate base vs finetuned on held-out examples (or, without any, on inputs
without labels: agreement, answer shares and the collapse verdict); metrics with a
confidence interval, confusion tables, an examples table with a word-level diff, a
free-form try of both models (always), and downloads. The sections live in ``studio.views.compare``."""

from __future__ import annotations

import streamlit as st

from selfguide.runs.rundir import RunDir
from selfguide.settings import cli as cliargs
from selfguide.settings.evaluation import EvalConfig
from studio.app import frame, presets, state, widgets
from studio.app import jobs as sjobs
from studio.views import compare as compare_views
from studio.views import compare_unlabeled
from studio.views import model as model_views

frame.ensure(__file__)  # a page started on its own runs inside the frame

st.title("Compare")
st.caption("Step 6 of 6 · The same held-out examples through the base model (before) and "
           "the finetuned model (after), decoded greedily so the comparison is repeatable.")
widgets.show_flash()
run = widgets.require_run("Comparison")
rd = RunDir.named(run)
model_views.run_model_note(rd)

if not rd.adapter_dir.is_dir():
    st.info("This run has no finetuned adapter yet. Train one on the **Finetune** page.")
    st.page_link(frame.page_path("finetune"), label="Go to Finetune",
                 icon=":material/model_training:")
    st.stop()

jstat = sjobs.status(run, "eval")
running = sjobs.is_active(jstat)
can_evaluate = compare_unlabeled.plan_note(rd)
compare_unlabeled.own_inputs_form(rd)
with st.expander("Evaluation settings", expanded=not rd.metrics_file.is_file()):
    if not state.draft("eval.cfg"):
        state.set_draft("eval.cfg", dict(presets.FIRST_EVAL))
    values = widgets.config_form(EvalConfig, "eval.cfg", columns=3)
    cfg = widgets.build_config(EvalConfig, values)
    st.caption(f"The first evaluation takes every held-out example of the task, up to "
               f"{presets.FIRST_EVAL['limit']}; limit 0 takes them all, a small limit is a "
               "quick look.")
evaluate = st.button("Evaluate before / after", type="primary", icon=":material/science:",
                     disabled=running or cfg is None or not can_evaluate)
if evaluate and widgets.start_job(run, "eval",
                                  cliargs.job_argv("eval", run=run, configs=[cfg])):
    st.rerun()
widgets.job_panel(run, "eval", title="Evaluation job")

compare_views.stale_note(rd)
compare_views.results(rd, rd.read_metrics(), rd.read_predictions(),
                      cfg.max_new_tokens if cfg else 48)
compare_views.gguf_export(rd)
