"""Synthesize page: pick the method and its settings, start/stop the job, watch a live preview."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from selfguide import store
from selfguide.config import ModelConfig, from_dict
from selfguide.configs import synthesis as syncfg
from selfguide.errors import CorruptFile, SelfGuideError
from studio import jobs as sjobs
from studio import previews, state, widgets


st.title("Synthesize")
st.caption("Step 3 of 6 · The model writes new task inputs from your demonstrations, then "
           "answers each one several times; answers that agree become training examples.")
widgets.show_flash()
run = widgets.require_run("Synthesis")
run_dir = store.resolve_run_dir(run)

METHODS = {"selfguide": "SELF-GUIDE (Zhao et al. 2024): inputs, then self-consistent outputs",
           "selfinstruct": "Self-Instruct (Wang et al. 2022): new instructions and instances"}
STAGE = {"selfguide": "synthesize", "selfinstruct": "self-instruct"}
# A studio-only preset for a first look: a few minutes with the embedded model on a CPU.
TINY = {"rounds": 2, "prompts_per_round": 6, "n_samples": 3, "max_generated_examples": 3,
        "annotate_batch": 12}
PRESETS = {"tiny": TINY, **{k: v["synthesis"] for k, v in syncfg.PRESETS.items()},
           "custom": None}

method = st.radio("Method", list(METHODS), format_func=METHODS.get, horizontal=True,
                  key=state.widget_key("synth", "method"))
stage = STAGE[method]
has_task = (run_dir / "task.json").is_file()
if method == "selfguide" and not has_task:
    st.warning("This run has no task yet. Define one on the Task page first.")
    st.page_link("studio/pages/task.py", label="Go to Task", icon=":material/edit_note:")
    st.stop()

jstat = sjobs.status(run, stage)
running = sjobs.is_active(jstat)

with st.expander("Settings", expanded=not running):
    if method == "selfguide":
        values = widgets.preset_form(
            syncfg.SynthesisConfig, "synth.cfg", PRESETS, page="synth",
            help="tiny: a first look in a few minutes on a CPU; quick: ≤ 10 min with the "
                 "embedded model, ≥ 60 kept examples; paper: the settings of the SELF-GUIDE "
                 "paper.", columns=3)
        cfg = widgets.build_config(syncfg.SynthesisConfig, values)
        cfg_argv = sjobs.config_argv(cfg, every=True) if cfg is not None else None
        if cfg is not None:
            extra = (f" (up to {cfg.round_limit * cfg.prompts_per_round} while fewer than "
                     f"{cfg.min_inputs} inputs pass the filters)" if cfg.min_inputs else "")
            st.caption(f"{cfg.total_prompts} input-generation prompts{extra}, then "
                       f"{cfg.n_samples} sampled answers per kept input.")
    else:
        from selfguide.configs import selfinstruct as sicfg

        values = widgets.config_form(sicfg.SelfInstructConfig, "synth.si", columns=3)
        cfg = widgets.build_config(sicfg.SelfInstructConfig, values)
        st.markdown("**Instruction filters** (they decide which new instructions join the "
                    "pool)")
        fvalues = widgets.config_form(
            sicfg.SelfInstructFilterConfig, "synth.sifilter", columns=3,
            include=["rouge_threshold", "min_instruction_words", "max_instruction_words",
                     "blacklist", "banned_prefixes"],
            sliders={"rouge_threshold": (0.05, 1.0, 0.05)})
        fcfg = widgets.build_config(sicfg.SelfInstructFilterConfig, fvalues)
        cfg_argv = (sjobs.config_argv(cfg) + sjobs.config_argv(fcfg)
                    if cfg is not None and fcfg is not None else None)

    overwrite = st.checkbox("Discard data generated earlier in this run with other settings",
                            key=state.widget_key("synth", "overwrite"),
                            help="Without this, a run only resumes or extends generation with "
                                 "the settings it started with.")

model_cfg = from_dict(ModelConfig, state.model_config())
st.caption(f"Model: **{model_cfg.model}** ({model_cfg.precision}); change it on the Model page.")


@st.cache_data(show_spinner="Checking that the task's rows fit training...", max_entries=8)
def rows_fit_note(task_json: str, model_json: str) -> str | None:
    """trainfit.check_rows_fit before the job starts (raises SelfGuideError to refuse)."""
    import json

    from selfguide.task import TaskSpec
    from selfguide.trainfit import check_rows_fit

    return check_rows_fit(TaskSpec.from_dict(json.loads(task_json)),
                          from_dict(ModelConfig, json.loads(model_json))).note


c1, c2 = st.columns([1, 4])
if c1.button("Start", type="primary", icon=":material/play_arrow:",
             disabled=running or cfg_argv is None):
    if method == "selfguide":
        try:
            note = rows_fit_note((run_dir / "task.json").read_text(encoding="utf-8"),
                                 json.dumps(state.model_config(), sort_keys=True))
        except SelfGuideError as exc:
            st.error(str(exc))
            st.stop()
        if note:
            st.info(note[0].upper() + note[1:] + ".")
        argv = ["synthesize", str(run_dir / "task.json"), "--run", run]
    else:
        argv = ["self-instruct", "--run", run]
    argv += cfg_argv + sjobs.config_argv(model_cfg)
    if overwrite and method == "selfguide":
        argv.append("--overwrite")
    if widgets.start_job(run, stage, argv):
        st.rerun()
if running:
    c2.caption("A job is running: settings are locked until it ends or you cancel it.")


labels = tuple((store.read_json(run_dir / "task.json", default={}) or {}).get("labels") or ())


def live_preview(evs: list[dict]) -> None:
    if method == "selfinstruct":
        rounds = previews.tail_jsonl(run_dir / "selfinstruct.jsonl", 20)
        if not rounds:
            st.caption("New instructions will appear here after each round.")
            return
        st.markdown("**Newest instructions** (accepted ones join the pool)")
        st.dataframe(previews.selfinstruct_rows(rounds), hide_index=True, width="stretch",
                     height=280)
        return
    inputs = previews.tail_jsonl(run_dir / "inputs.jsonl", 200)
    annotations = previews.tail_jsonl(run_dir / "annotations.jsonl", 200)
    if not inputs and not annotations:
        st.caption("New inputs will appear here as they are generated.")
        return
    st.markdown(f"**Newest inputs** ({previews.count_rows(run_dir / 'inputs.jsonl')} so far)")
    st.dataframe(previews.input_rows(inputs), hide_index=True, width="stretch", height=240)
    if annotations:
        st.markdown("**Newest answers with their vote share**")
        st.dataframe(previews.annotation_rows(annotations, labels), hide_index=True,
                     width="stretch", height=240)


widgets.job_panel(run, stage, title="Synthesis job", extra=live_preview)

cand = run_dir / "candidates.parquet"
if cand.is_file() and not running:
    try:
        n = len(pd.read_parquet(cand, columns=["id"]))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a torn or foreign file
        widgets.show_error(CorruptFile(f"{cand} cannot be read ({exc}).",
                                       hint="Delete it; 'selfguide filter' rebuilds it."))
    else:
        st.success(f"{n} candidates are ready to filter.")
        st.page_link("studio/pages/filter.py", label="Next: filter the candidates",
                     icon=":material/arrow_forward:")
try:
    log = sjobs.status(run, stage)
    if getattr(log, "log_tail", "") and sjobs.state_of(log) != "none":
        with st.expander("Job log (last lines)"):
            st.code(log.log_tail, language=None)
except SelfGuideError as exc:
    widgets.show_error(exc)
