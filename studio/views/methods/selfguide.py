"""SELF-GUIDE's parts of the studio: its settings form with presets, the job's command line,
the pre-start check that the task's rows fit training, the live preview of inputs and
answers, the ready message and its Filter view (``studio.views.filter.selfguide_view``).

It does not generate or filter anything (the job and the library do).
"""

from __future__ import annotations

import json

import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.methods.selfguide import config as syncfg
from selfguide.runs.rundir import RunDir
from selfguide.settings import cli as cliargs
from selfguide.settings.fields import ModelConfig, from_dict
from studio.app import presets, state, widgets
from studio.views import synthesize_previews as previews
from studio.views.methods import Settings
from studio.views.methods.selfguide_sources import sources_form


def settings_form(run: str, stage: str) -> Settings | None:
    from studio.views import structure as structure_view

    task = _task(run)
    structure_view.show_template(task)
    values = widgets.preset_form(syncfg.SynthesisConfig, "synth.cfg", presets.SYNTHESIS,
                                 page="synth", help=presets.SYNTHESIS_HELP, columns=3)
    cfg = widgets.build_config(syncfg.SynthesisConfig, values)
    if cfg is None:
        return None
    options = sources_form(run, cfg)  # your own inputs / documents (issue 36)
    if options is None:
        return None
    if "inputs" not in options:
        extra = (f" (up to {cfg.round_limit * cfg.prompts_per_round} while fewer than "
                 f"{cfg.min_inputs} inputs pass the filters)" if cfg.min_inputs else "")
        st.caption(f"{cfg.total_prompts} input-generation prompts{extra}, then "
                   f"{cfg.n_samples} sampled answers per kept input.")
    return Settings(full=(cfg,), options=options)


def _task(run: str):
    """The run's task (None when it has none or it does not validate: the page says so)."""
    try:
        return RunDir.named(run).read_task()
    except SelfGuideError:
        return None


def job_argv(run: str, settings: Settings, model: ModelConfig, overwrite: bool) -> list[str]:
    return cliargs.job_argv("synthesize", str(RunDir.named(run).task_file), run=run,
                            options=settings.options, full=settings.full,
                            configs=(*settings.configs, model),
                            flags=["--overwrite"] if overwrite else [])


@st.cache_data(show_spinner="Checking that the task's rows fit training...", max_entries=8)
def rows_fit_note(task_json: str, model_json: str) -> str | None:
    """trainfit.check_rows_fit before the job starts (raises SelfGuideError to refuse)."""
    from selfguide.task.spec import TaskSpec
    from selfguide.training.fit import check_rows_fit

    return check_rows_fit(TaskSpec.from_dict(json.loads(task_json)),
                          from_dict(ModelConfig, json.loads(model_json))).note


def before_start(run_dir: RunDir) -> bool:
    """The task's rows must fit training with the model chosen: refuse before the job."""
    try:
        note = rows_fit_note(json.dumps(run_dir.read_task_dict(), sort_keys=True),
                             json.dumps(state.model_config(), sort_keys=True))
    except SelfGuideError as exc:
        widgets.show_error(exc)
        return False
    if note:
        st.info(note[0].upper() + note[1:] + ".")
    return True


def ready_lines(run_dir: RunDir, n: int) -> list[tuple[str, str]]:
    """``(level, message)`` after a synthesis job: what the candidates count and what the
    training set holds (they differ: the filters drop rows), and the job's warning."""
    report = run_dir.read_report() or {}
    train = report.get("train")
    kept = f"; {train} of them pass the filters and are the training examples now" \
        if train is not None else ""
    answered = _answered(run_dir)
    what = (f"{n} candidates are ready to filter (every generated input"
            + (f"; {answered} passed the input filters and were answered" if answered
               is not None else "") + f"){kept}.")
    origins = report.get("origins") or {}
    if origins:  # the user's own inputs (issue 36)
        what += " By origin: " + "; ".join(f"{o} {c['candidates']} (kept {c['kept']})"
                                           for o, c in origins.items()) + "."
    lines = [("success", what + " Review or change the filters on the Filter page.")]
    if report.get("warning"):
        lines.append(("warning", str(report["warning"])))
    return lines


def _answered(run_dir: RunDir) -> int | None:
    if not run_dir.annotations_file.is_file():
        return None
    return len({r.get("id") for r in run_dir.read_log(run_dir.annotations_file)})


def preview(run_dir: RunDir) -> None:
    inputs = previews.tail_jsonl(run_dir.inputs_file, 200)
    annotations = previews.tail_jsonl(run_dir.annotations_file, 200)
    if not inputs and not annotations:
        st.caption("New inputs will appear here as they are generated.")
        return
    st.markdown(f"**Newest inputs** ({previews.count_rows(run_dir.inputs_file)} so far)")
    st.dataframe(previews.input_rows(inputs), hide_index=True, width="stretch", height=240)
    if annotations:
        labels = tuple((run_dir.read_task_dict() or {}).get("labels") or ())
        st.markdown("**Newest answers with their vote share**")
        texts = {str(r.get("id")): str(r.get("input", ""))  # every input: small file
                 for r in run_dir.read_log(run_dir.inputs_file)}
        st.dataframe(previews.annotation_rows(annotations, labels, texts), hide_index=True,
                     width="stretch", height=240)


def filter_view(run_dir: RunDir) -> None:
    from studio.app import frame
    from studio.views import filter as filter_views
    from studio.views import filter_rows as filtering

    try:
        cands = filtering.load_candidates(run_dir.path)
    except SelfGuideError as exc:
        widgets.show_error(exc)
        return
    if cands is None:
        st.info("No candidates yet. Run **Synthesize** first; its results appear here.")
        st.page_link(frame.page_path("synthesize"), label="Go to Synthesize",
                     icon=":material/auto_awesome:")
        return
    filter_views.selfguide_view(run_dir, cands, filtering.load_task(run_dir.path))
