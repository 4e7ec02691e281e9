"""The Synthesize page's generic parts: which method a run uses, the speed its last job
measured, and the job panel's live preview, dispatched to the method's own studio parts
(``studio.views.methods``).

What it does not do: draw a method's settings (the method's studio module does), generate
anything in the Streamlit process (the job does) or decide settings (the config dataclasses
validate them).
"""

from __future__ import annotations

from typing import Any

from selfguide import methods
from selfguide.runs.rundir import RunDir


def choices() -> dict[str, str]:
    """``{method name: one line}`` for the method picker, the default first."""
    return {m.name: m.summary or m.title for m in methods.all_methods()}


def run_method(run_dir: RunDir) -> str:
    """The method a run was generated with (its config.json), else the default method: the
    page's first choice, so that an existing run shows its own settings and counts."""
    try:
        name = run_dir.method
    except Exception:  # noqa: BLE001 - an unreadable config: the page shows its error elsewhere
        name = None
    return name if name in choices() else methods.default().name

def measured_speed(run: str, stage: str) -> float | None:
    """tokens/s of the run's last job of ``stage`` (its last progress event), if any."""
    from studio.app import jobs as sjobs
    try:
        evs = sjobs.events(run, stage)
    except Exception:  # noqa: BLE001 - no job yet, or an unreadable log: no measurement
        return None
    last = next((e for e in reversed(evs) if e.get("type") == "progress"
                 and e.get("tokens_per_s")), None)
    return float(last["tokens_per_s"]) if last else None


def live_preview(run_dir: RunDir, parts: Any) -> Any:
    """The job panel's extra: the newest rows the running job has committed."""
    def draw(evs: list[dict]) -> None:
        parts.preview(run_dir)

    return draw


# The words a page uses for a stage's job (a method's own stages: its ``job_stages``).
STAGE_WORDS = {"train": "training", "eval": "evaluation", "filter": "filter",
               "export": "dataset export", "export-model": "GGUF export", "merge": "merge",
               "relabel": "another round (the tuned model answering again)"}


def stage_words(stage: str) -> str:
    for m in methods.all_methods():
        if stage in (m.job_stages or {}):
            return str(m.job_stages[stage])
        if stage == m.stage:
            return f"{m.title} synthesis"
    return STAGE_WORDS.get(stage, stage)


def has_generated(run_dir: RunDir) -> bool:
    """Whether a synthesis method has written data into the run."""
    return any(p.exists() for p in (run_dir.inputs_file, run_dir.candidates_file,
                                    run_dir.rounds_file, run_dir.records_file("train")))


def start_blocker(run_dir: RunDir, method_name: str, stage: str) -> tuple[str, bool] | None:
    """Why Start would be refused now, and whether a new run is the way out (None: it
    would not be). Checked before the click, so the button is disabled with the reason
    beside it instead of failing after launch."""
    from selfguide.runs import workspace

    busy = [s for s in workspace.active_jobs(run_dir.name) if s != stage]
    if busy:
        words = " and ".join(stage_words(s) for s in busy)
        return (f"The {words} job of this run is running and works on its data; start "
                f"synthesis when it has finished, or cancel it on its page.", False)
    owner = run_dir_method(run_dir)
    if owner and owner != method_name and has_generated(run_dir):
        return (f"This run holds data made by {methods.get(owner).title}; "
                f"{methods.get(method_name).title} would overwrite it. Start it in a new "
                "run (with the same task):", True)
    return None


def run_dir_method(run_dir: RunDir) -> str | None:
    try:
        name = run_dir.method
    except Exception:  # noqa: BLE001 - an unreadable config: the page shows its error elsewhere
        return None
    return name if name in choices() else None


def new_run_form(run_dir: RunDir, method_name: str) -> str | None:
    """A run-name field and a button that creates a run with this run's task; returns the
    new run's name once created (the page makes it current)."""
    import streamlit as st

    from selfguide.errors import SelfGuideError
    from selfguide.runs import workspace
    from studio.app import state, widgets

    task = run_dir.read_task()
    default = workspace.unique_name(f"{run_dir.name}-{method_name}")
    c1, c2 = st.columns([2, 1])
    name = c1.text_input("New run name", value=default,
                         key=state.widget_key("synth", f"new_run.{run_dir.name}"))
    if not c2.button("Create the run and switch to it", icon=":material/add:"):
        return None
    try:
        if task is not None:
            return workspace.save_task(task, workspace.create_run(name.strip()).name)
        return workspace.create_run(name.strip()).name
    except SelfGuideError as exc:
        widgets.show_error(exc)
        return None
