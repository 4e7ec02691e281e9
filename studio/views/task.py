"""The Task page's editor: the task's definition as widgets, and its validation.

What it does: draws name, type, metric, instruction, labels and the demonstrations table
from a task draft (``TaskSpec.to_dict()`` shape), returns what the widgets hold as a new
draft, and validates a draft through ``TaskSpec`` (showing why it is not valid yet).

What it does not do: load, import or save tasks (``selfguide.task.spec``,
``selfguide.runs.workspace.save_task``) or keep state beyond ``studio.app.state``'s task draft.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.runs.rundir import RunDir
from selfguide.task import spec as sgtask
from studio.app import state, widgets
from studio.views import task_rows

# The example the Task page offers first: the README's "First minutes" walk loads it.
DEFAULT_EXAMPLE = "sentiment.json"
EMPTY = {"name": "my-task", "instruction": "", "demos": [], "task_type": "generation",
         "labels": [], "metric": "rouge_l", "test": [], "source": ""}


def set_task(spec: sgtask.TaskSpec) -> None:
    """Make ``spec`` the draft; new widgets start from it."""
    state.set_task_draft(spec.to_dict())
    state.bump_form("task")  # new widgets that start from the new draft


# The metric a task type starts with; switching Type switches Metric until the user picks.
TYPE_METRIC = {"classification": "exact_match", "generation": "rouge_l"}


def _metric_chosen(v: int) -> None:
    state.set_draft("task.metric_chosen", {"v": v})


def _type_changed(v: int) -> None:
    if state.draft("task.metric_chosen").get("v") == v:
        return  # the user picked the metric for this task: leave it
    metric = TYPE_METRIC.get(str(st.session_state.get(state.widget_key("task", "task_type", v))))
    if metric in sgtask.METRICS:
        st.session_state[state.widget_key("task", "metric", v)] = metric


def _editor_base(d: dict, v: int) -> list[dict]:
    """The demonstrations the grid of form version ``v`` started from.

    ``st.data_editor`` with ``num_rows="dynamic"`` takes its identity from its data: handing
    it the draft it just edited would make a new, empty-state widget on the next run, and
    the edit the browser sends for the old one (typed, then Enter) would be dropped. So the
    grid keeps the data it started from until the form is reset (``set_task``); its edits
    are replayed onto that same data on every run.
    """
    base = state.draft("task.demos_base")
    if base.get("v") != v:
        base = {"v": v, "demos": list(d.get("demos") or [])}
        state.set_draft("task.demos_base", base)
    return base["demos"]


def _demos(d: dict, v: int) -> list[dict]:
    st.markdown("**Demonstrations** — edit cells, add or delete rows.")
    demos_df = pd.DataFrame(_editor_base(d, v), columns=["input", "output"]).astype(str)
    edited = st.data_editor(
        demos_df, num_rows="dynamic", hide_index=True, width="stretch",
        key=state.widget_key("task", "demos", v),
        column_config={"input": st.column_config.TextColumn("input", width="large"),
                       "output": st.column_config.TextColumn("output", width="medium")})
    return [{"input": str(r["input"] or ""), "output": str(r["output"] or "")}
            for r in edited.fillna("").to_dict("records")
            if str(r["input"] or "").strip() or str(r["output"] or "").strip()]


def editor(d: dict) -> dict:
    """Draw the definition of draft ``d``; returns the draft the widgets now hold."""
    st.subheader("Definition")
    v = state.form_version("task")
    c1, c2, c3 = st.columns([2, 1, 1])
    name = c1.text_input("Name", value=d.get("name", ""),
                         key=state.widget_key("task", "name", v))
    types = list(sgtask.TASK_TYPES)
    task_type = c2.selectbox("Type", types, index=types.index(d.get("task_type", "generation")),
                             key=state.widget_key("task", "task_type", v),
                             on_change=_type_changed, args=(v,),
                             help="classification: outputs come from a fixed label set; "
                                  "generation: free text.")
    metrics = list(sgtask.METRICS)
    mkey = state.widget_key("task", "metric", v)
    # Once the type has set the metric (Session State), the widget takes no default too:
    # both would make Streamlit warn (issue 40).
    metric = c3.selectbox("Metric", metrics, index=0 if mkey in st.session_state else
                          metrics.index(d.get("metric", "rouge_l")), key=mkey,
                          on_change=_metric_chosen, args=(v,),
                          help="exact_match for labels, rouge_l for free text. Follows the "
                               "type until you pick one.")
    instruction = st.text_area("Instruction", value=d.get("instruction", ""), height=100,
                               key=state.widget_key("task", "instruction", v))
    labels_text = st.text_input("Labels (comma-separated; classification only)",
                                value=", ".join(d.get("labels") or []),
                                key=state.widget_key("task", "labels", v),
                                disabled=task_type != "classification")
    demos = _demos(d, v)
    tests = task_rows.held_out(d, v)
    task_rows.overlap_warning(demos, tests)
    labels = [x.strip() for x in labels_text.split(",") if x.strip()] \
        if task_type == "classification" else []
    candidate = {"name": name, "instruction": instruction, "task_type": task_type,
                 "labels": labels, "metric": metric, "demos": demos, "test": tests,
                 "source": d.get("source", "")}
    task_rows.import_rows(candidate)
    return candidate


def validate(candidate: dict) -> sgtask.TaskSpec | None:
    """The validated task, or None after showing why it is not valid yet."""
    if not candidate["instruction"].strip() and not candidate["demos"]:
        st.info("Start from an example task above, import a file, or write an instruction "
                "and at least 3 demonstrations.", icon=":material/info:")
        return None
    try:
        spec = sgtask.TaskSpec.from_dict(candidate)
    except SelfGuideError as exc:
        state.set_task_draft(candidate)
        widgets.show_error(exc)
        return None
    state.set_task_draft(spec.to_dict())
    st.success(f"Valid task: {len(spec.demos)} demonstrations"
               + (f", labels {', '.join(spec.labels)}" if spec.labels else "") + ".",
               icon=":material/check_circle:")
    return spec


# --------------------------------------------------------------------------- save target

def run_has_data(rd: RunDir) -> bool:
    """Whether run ``rd`` holds more than its task: synthesized data, a dataset, a model."""
    return any(p.exists() for p in (rd.inputs_file, rd.candidates_file,
                                    rd.records_file("train"), rd.adapter_dir))


def save_choice(spec: sgtask.TaskSpec | None, run: str | None) -> tuple[str | None, bool]:
    """Ask where ``spec`` goes; returns (the run to save into or None for a new run, whether
    saving may go ahead).

    Saving into a run that holds another task replaces that run's task, so it is never the
    preselected choice: a new run is, and replacing needs a confirmation naming what is lost.
    """
    if not run:
        st.caption("Creates a new run named after the task and saves the task into it.")
        return None, True
    rd = RunDir.named(run)
    saved = rd.read_task() if rd.task_file.is_file() else None
    has_data = run_has_data(rd)
    if spec is None or (saved is None and not has_data):
        st.caption(f"Saves the task into the current run **{run}**. The next steps read it "
                   "from there.")
        return run, True
    if saved is not None and saved.to_dict() == spec.to_dict():
        st.caption(f"This task is the one saved in the current run **{run}**.")
        return run, True
    if saved is not None and saved.to_dict(include_test=False) == spec.to_dict(
            include_test=False):
        st.caption(f"The task of the current run **{run}** with other held-out rows "
                   f"({len(saved.test)} → {len(spec.test)}): saving updates them there. "
                   "Synthesis and training never use them; only the comparison does.")
        return run, True
    into = f"Save into run {run} (replaces its task)"
    options = ["Save as a new run", into]
    what = f"task '{saved.name}'" if saved is not None else "a task"
    st.warning(f"The current run **{run}** holds {what}"
               + (" and data made from it" if has_data else "") + ". Saving into it "
               "replaces its task" + ("; its data would no longer match." if has_data
                                      else "."), icon=":material/warning:")
    pick = st.radio("Where to save", options, index=0,
                    key=state.widget_key("task", f"save_target.{run}"))
    if pick != into:
        return None, True
    lost = f"task '{saved.name}'" if saved is not None else "its task"
    sure = st.checkbox(f"Yes, replace {lost} in run {run}"
                       + (" (its synthesized data, dataset and model were made for it)"
                          if has_data else ""),
                       key=state.widget_key("task", f"save_confirm.{run}"))
    return run, sure
