"""Self-Instruct's parts of the studio: its settings form (generation settings with presets,
the instruction-pool filters that are fixed once generation starts, a time estimate), the
job's command line, the live preview of new instructions, the ready message and its Filter
view (instance filters live, pool filters read-only).

It does not generate or filter anything (the job and the library do).
"""

from __future__ import annotations

import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.methods.selfinstruct import METHOD
from selfguide.methods.selfinstruct import config as sicfg
from selfguide.methods.selfinstruct.config import SelfInstructFilterConfig
from selfguide.runs.rundir import RunDir
from selfguide.settings import cli as cliargs
from selfguide.settings.fields import ModelConfig
from studio.app import charts, state, widgets
from studio.views import filter as filter_views
from studio.views import filter_rows as filtering
from studio.views import filter_selfinstruct as si_filtering
from studio.views import synthesize_previews as previews
from studio.views.methods import Settings
from studio.views.synthesize import measured_speed

SI_PRESETS: dict[str, dict | None] = {**sicfg.PRESETS, "custom": None}
SI_PRESET_HELP = ("quick: a first run on a CPU with the embedded model (about 5-10 min on a "
                  "shared 2-core CPU, a handful of training examples); "
                  "paper: the settings of Wang et al. 2022 (hours on a CPU). The same as "
                  "`selfguide self-instruct --preset`.")
# A shared 2-core CPU with the embedded model, when no job of the run has measured it yet,
# and the share of the token budgets a run really generates (most answers stop early).
# Measured: the quick preset, 8 prompts, 12 instructions, 3-4 tokens/s, 6.5 min.
GUESS_TOKENS_PER_S = 5.0
BUDGET_FILL = 0.5
# The Self-Instruct filters that decide which new instructions join the pool.
POOL_FILTERS = ["rouge_threshold", "min_instruction_words", "max_instruction_words",
                "blacklist", "banned_prefixes"]


def settings_form(run: str, stage: str) -> Settings | None:
    tokens_per_s = measured_speed(run, stage)
    values = widgets.preset_form(sicfg.SelfInstructConfig, "synth.si", SI_PRESETS,
                                 page="synth.si", help=SI_PRESET_HELP, columns=3)
    cfg = widgets.build_config(sicfg.SelfInstructConfig, values)
    if cfg is not None:
        st.caption(selfinstruct_estimate(cfg, tokens_per_s))
    st.markdown("**Instruction filters** (they decide which new instructions join the pool)")
    fvalues = widgets.config_form(sicfg.SelfInstructFilterConfig, "synth.sifilter", columns=3,
                                  include=POOL_FILTERS,
                                  sliders={"rouge_threshold": (0.05, 1.0, 0.05)})
    fcfg = widgets.build_config(sicfg.SelfInstructFilterConfig, fvalues)
    return Settings(configs=(cfg, fcfg)) if cfg is not None and fcfg is not None else None


def selfinstruct_estimate(cfg: sicfg.SelfInstructConfig, tokens_per_s: float | None) -> str:
    """A rough time estimate before Start: the prompts the loop will likely need (it stops
    once ``num_instructions`` are accepted, at most ``max_rounds`` rounds), their token
    budgets, at the speed measured by this run's last job (else a CPU guess)."""
    import math

    most = cfg.max_rounds * cfg.prompts_per_round
    likely = min(most, math.ceil(cfg.num_instructions / max(1.0, cfg.new_per_prompt * 0.4)))
    tokens = likely * cfg.instruction_max_tokens + cfg.num_instructions * (
        cfg.instance_max_tokens + 8)  # + the yes/no classification question
    speed = tokens_per_s or GUESS_TOKENS_PER_S
    minutes = max(1, round(tokens * BUDGET_FILL / speed / 60))
    how = "measured by this run's last job" if tokens_per_s else "a guess for a shared CPU"
    return (f"Rough time before Start: about {likely} instruction prompts (at most {most}) "
            f"and {cfg.num_instructions} instance prompts, ~{int(tokens * BUDGET_FILL):,} "
            f"generated tokens (budgets: {tokens:,}): ≈ {minutes} min at {speed:.0f} "
            f"tokens/s ({how}), plus loading the model.")


def job_argv(run: str, settings: Settings, model: ModelConfig, overwrite: bool) -> list[str]:
    return cliargs.job_argv(METHOD.stage, run=run, full=settings.full,
                            configs=(*settings.configs, model))


def ready_lines(run_dir: RunDir, n: int) -> list[tuple[str, str]]:
    report = run_dir.read_report() or {}
    train = report.get("train")
    kept = f"; {train} of them pass the filters and are the training examples now" \
        if train is not None else ""
    lines = [("success", f"{n} candidates are ready to filter (a row per generated "
                         f"instruction or instance, rejected ones included){kept}. Review or "
                         "change the filters on the Filter page.")]
    if report.get("warning"):
        lines.append(("warning", str(report["warning"])))
    return lines


def preview(run_dir: RunDir) -> None:
    rounds = previews.tail_jsonl(run_dir.rounds_file, 20)
    if not rounds:
        st.caption("New instructions will appear here after each round.")
        return
    st.markdown("**Newest instructions** (accepted ones join the pool)")
    st.dataframe(previews.selfinstruct_rows(rounds), hide_index=True, width="stretch",
                 height=280)


# --------------------------------------------------------------------------- the Filter page

def _selfinstruct_filters(run: str, saved: SelfInstructFilterConfig,
                          frozen: tuple[str, ...]):
    st.subheader("Filters")
    values = widgets.config_form(SelfInstructFilterConfig, f"sifilter.{run}", base=saved,
                                 exclude=frozen, columns=1)
    fcfg = widgets.build_config(SelfInstructFilterConfig,
                                {**{k: getattr(saved, k) for k in frozen},
                                 **values})
    with st.expander("Instruction (pool) filters — fixed for this run"):
        st.caption("They decided which instructions joined the pool, and so what was "
                   "generated next. Set them on the Synthesize page for a new run.")
        for k in frozen:
            st.text(f"{k}: {getattr(saved, k)}")
    return fcfg


def _selfinstruct_results(rd: RunDir, df, overrides: dict, fcfg) -> None:
    c = st.columns(4)
    c[0].metric("Candidates", len(df))
    c[1].metric("Kept", int(df["kept"].sum()))
    c[2].metric("Instructions", int(df["instruction_id"].nunique()))
    c[3].metric("Manual overrides", len(overrides))
    st.altair_chart(charts.funnel(filtering.reason_counts(df, filtering.filter_order(rd.path)), coloured=False),
                    width="stretch")
    st.markdown("**Nearest pool instruction (ROUGE-L)**")
    st.dataframe(si_filtering.nearest_instructions(df), hide_index=True, width="stretch",
                 height=260, column_config=filter_views.ROUGE_COLUMN)
    st.subheader("Candidates")
    filter_views.candidates_editor(rd, df, overrides, filtering.filter_order(rd.path),
                      si_filtering.TABLE_COLS, label_is_output=True)
    if st.button("Save dataset", type="primary", icon=":material/save:",
                 disabled=not df["kept"].any()):
        try:
            rep = filtering.save_dataset(rd.path, fcfg)
            state.flash("success", f"Saved {rep.get('kept', '?')} training rows.")
            st.rerun()
        except SelfGuideError as exc:
            widgets.show_error(exc)


def filter_view(rd: RunDir) -> None:
    """A Self-Instruct run: instance filters live; pool filters read-only."""
    try:
        rounds = si_filtering.load_rounds(rd.path)
        saved = filtering.saved_config(rd.path)
        frozen = filtering.frozen_fields(rd.path)
    except SelfGuideError as exc:
        widgets.show_error(exc)
        return
    if not rounds:
        st.info("No Self-Instruct rounds yet. Run **Synthesize** (method Self-Instruct) first.")
        return
    left, right = st.columns([1, 3], gap="large")
    with left:
        fcfg = _selfinstruct_filters(rd.name, saved, frozen)
    if fcfg is None:
        return
    overrides = filtering.read_overrides(rd.path)
    df = si_filtering.apply(rounds, fcfg, overrides)
    with right:
        _selfinstruct_results(rd, df, overrides, fcfg)


