"""The Synthesize page's parts: the method's settings forms, the job's command line, the
pre-flight row-fit check and the live preview of what the job writes.

What it does: draws the settings of the chosen method (SELF-GUIDE: ``SynthesisConfig`` with
the presets of ``studio.presets``; Self-Instruct: its config plus the instruction (pool)
filters, which are fixed once generation starts), turns them into the job's argv through
``selfguide.cliargs.job_argv``, and shows the newest generated rows while the job runs.

What it does not do: generate anything in the Streamlit process (the job does) or decide
settings (the config dataclasses validate them).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import streamlit as st

from selfguide import cliargs, store
from selfguide.config import ModelConfig, from_dict
from selfguide.methods.selfinstruct import config as sicfg
from selfguide.methods.selfguide import config as syncfg
from selfguide.rundir import RunDir
from studio import presets, previews, widgets

METHODS = {"selfguide": "SELF-GUIDE (Zhao et al. 2024): inputs, then self-consistent outputs",
           "selfinstruct": "Self-Instruct (Wang et al. 2022): new instructions and instances"}
STAGE = {"selfguide": "synthesize", "selfinstruct": "self-instruct"}
# The Self-Instruct filters that decide which new instructions join the pool.
POOL_FILTERS = ["rouge_threshold", "min_instruction_words", "max_instruction_words",
                "blacklist", "banned_prefixes"]


@dataclasses.dataclass
class Settings:
    """The method's validated configs: ``full`` ones go on the command line field by field
    (the command starts from a preset), the others by their changed fields."""

    full: tuple = ()
    configs: tuple = ()


def selfguide_settings() -> Settings | None:
    values = widgets.preset_form(syncfg.SynthesisConfig, "synth.cfg", presets.SYNTHESIS,
                                 page="synth", help=presets.SYNTHESIS_HELP, columns=3)
    cfg = widgets.build_config(syncfg.SynthesisConfig, values)
    if cfg is None:
        return None
    extra = (f" (up to {cfg.round_limit * cfg.prompts_per_round} while fewer than "
             f"{cfg.min_inputs} inputs pass the filters)" if cfg.min_inputs else "")
    st.caption(f"{cfg.total_prompts} input-generation prompts{extra}, then "
               f"{cfg.n_samples} sampled answers per kept input.")
    return Settings(full=(cfg,))


def selfinstruct_settings() -> Settings | None:
    values = widgets.config_form(sicfg.SelfInstructConfig, "synth.si", columns=3)
    cfg = widgets.build_config(sicfg.SelfInstructConfig, values)
    st.markdown("**Instruction filters** (they decide which new instructions join the pool)")
    fvalues = widgets.config_form(sicfg.SelfInstructFilterConfig, "synth.sifilter", columns=3,
                                  include=POOL_FILTERS,
                                  sliders={"rouge_threshold": (0.05, 1.0, 0.05)})
    fcfg = widgets.build_config(sicfg.SelfInstructFilterConfig, fvalues)
    return Settings(configs=(cfg, fcfg)) if cfg is not None and fcfg is not None else None


def job_argv(method: str, run: str, settings: Settings, model: ModelConfig, *,
             overwrite: bool) -> list[str]:
    """The command line of the method's synthesis job (exactly what the CLI parses)."""
    if method == "selfguide":
        return cliargs.job_argv("synthesize", str(RunDir.named(run).task_file), run=run,
                                full=settings.full, configs=(*settings.configs, model),
                                flags=["--overwrite"] if overwrite else [])
    return cliargs.job_argv("self-instruct", run=run, full=settings.full,
                            configs=(*settings.configs, model))


@st.cache_data(show_spinner="Checking that the task's rows fit training...", max_entries=8)
def rows_fit_note(task_json: str, model_json: str) -> str | None:
    """trainfit.check_rows_fit before the job starts (raises SelfGuideError to refuse)."""
    from selfguide.task import TaskSpec
    from selfguide.trainfit import check_rows_fit

    return check_rows_fit(TaskSpec.from_dict(json.loads(task_json)),
                          from_dict(ModelConfig, json.loads(model_json))).note


def live_preview(run_dir: RunDir, method: str) -> Any:
    """The job panel's extra: the newest rows the running job has committed."""
    def draw(evs: list[dict]) -> None:
        if method == "selfinstruct":
            _selfinstruct_preview(run_dir)
        else:
            _selfguide_preview(run_dir)

    return draw


def _selfinstruct_preview(run_dir: RunDir) -> None:
    rounds = previews.tail_jsonl(run_dir.rounds_file, 20)
    if not rounds:
        st.caption("New instructions will appear here after each round.")
        return
    st.markdown("**Newest instructions** (accepted ones join the pool)")
    st.dataframe(previews.selfinstruct_rows(rounds), hide_index=True, width="stretch",
                 height=280)


def _selfguide_preview(run_dir: RunDir) -> None:
    inputs = previews.tail_jsonl(run_dir.inputs_file, 200)
    annotations = previews.tail_jsonl(run_dir.annotations_file, 200)
    if not inputs and not annotations:
        st.caption("New inputs will appear here as they are generated.")
        return
    st.markdown(f"**Newest inputs** ({previews.count_rows(run_dir.inputs_file)} so far)")
    st.dataframe(previews.input_rows(inputs), hide_index=True, width="stretch", height=240)
    if annotations:
        labels = tuple((store.read_json(run_dir.task_file, default={}) or {}).get("labels")
                       or ())
        st.markdown("**Newest answers with their vote share**")
        st.dataframe(previews.annotation_rows(annotations, labels), hide_index=True,
                     width="stretch", height=240)
