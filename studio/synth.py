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
# The page subtitle, per method (issue 15, item 7: it describes the method selected).
SUBTITLE = {
    "selfguide": "Step 3 of 6 · The model writes new task inputs from your demonstrations, "
                 "then answers each one several times; answers that agree become training "
                 "examples.",
    "selfinstruct": "Step 3 of 6 · Self-Instruct: the model writes new instructions from a "
                    "pool of seed tasks (those too close to the pool are rejected), then an "
                    "input and output for each; they become training examples."}
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


def selfinstruct_settings(tokens_per_s: float | None = None) -> Settings | None:
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


def run_method(run_dir: RunDir) -> str:
    """The method a run was generated with (its config.json), else SELF-GUIDE: the page's
    first choice, so that an existing run shows its own settings and counts."""
    method = (store.read_json(run_dir.config_file, default={}) or {}).get("method")
    return method if method in METHODS else "selfguide"


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


def measured_speed(run: str, stage: str) -> float | None:
    """tokens/s of the run's last job of ``stage`` (its last progress event), if any."""
    from studio import jobs as sjobs

    try:
        evs = sjobs.events(run, stage)
    except Exception:  # noqa: BLE001 - no job yet, or an unreadable log: no measurement
        return None
    last = next((e for e in reversed(evs) if e.get("type") == "progress"
                 and e.get("tokens_per_s")), None)
    return float(last["tokens_per_s"]) if last else None


def ready_lines(run_dir: RunDir, method: str, n: int) -> list[tuple[str, str]]:
    """``(level, message)`` after a synthesis job: what the candidates count and what the
    training set holds (they differ: the filters drop rows), and the job's warning."""
    report = run_dir.read_report() or {}
    train = report.get("train")
    kept = f"; {train} of them pass the filters and are the training examples now" \
        if train is not None else ""
    if method == "selfinstruct":
        what = (f"{n} candidates are ready to filter (a row per generated instruction or "
                f"instance, rejected ones included){kept}.")
    else:
        answered = _answered(run_dir)
        what = (f"{n} candidates are ready to filter (every generated input"
                + (f"; {answered} passed the input filters and were answered" if answered
                   is not None else "") + f"){kept}.")
    lines = [("success", what + " Review or change the filters on the Filter page.")]
    if report.get("warning"):
        lines.append(("warning", str(report["warning"])))
    return lines


def _answered(run_dir: RunDir) -> int | None:
    if not run_dir.annotations_file.is_file():
        return None
    return len({r.get("id") for r in store.read_jsonl(run_dir.annotations_file)})


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
        texts = {str(r.get("id")): str(r.get("input", ""))  # every input: small file
                 for r in store.read_jsonl(run_dir.inputs_file)}
        st.dataframe(previews.annotation_rows(annotations, labels, texts), hide_index=True,
                     width="stretch", height=240)
