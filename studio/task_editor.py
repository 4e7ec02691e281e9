"""The Task page's editor: the task's definition as widgets, and its validation.

What it does: draws name, type, metric, instruction, labels and the demonstrations table
from a task draft (``TaskSpec.to_dict()`` shape), returns what the widgets hold as a new
draft, and validates a draft through ``TaskSpec`` (showing why it is not valid yet).

What it does not do: load, import or save tasks (``selfguide.task``,
``selfguide.workspace.save_task``) or keep state beyond ``studio.state``'s task draft.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from selfguide import task as sgtask
from selfguide.errors import SelfGuideError
from studio import state, widgets

EMPTY = {"name": "my-task", "instruction": "", "demos": [], "task_type": "generation",
         "labels": [], "metric": "rouge_l", "test": [], "source": ""}


def set_task(spec: sgtask.TaskSpec) -> None:
    """Make ``spec`` the draft; new widgets start from it."""
    state.set_task_draft(spec.to_dict())
    state.bump_form("task")  # new widgets that start from the new draft


def _demos(d: dict, v: int) -> list[dict]:
    st.markdown("**Demonstrations** — edit cells, add or delete rows.")
    demos_df = pd.DataFrame(d.get("demos") or [], columns=["input", "output"]).astype(str)
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
                             help="classification: outputs come from a fixed label set; "
                                  "generation: free text.")
    metrics = list(sgtask.METRICS)
    metric = c3.selectbox("Metric", metrics, index=metrics.index(d.get("metric", "rouge_l")),
                          key=state.widget_key("task", "metric", v),
                          help="exact_match for labels, rouge_l for free text.")
    instruction = st.text_area("Instruction", value=d.get("instruction", ""), height=100,
                               key=state.widget_key("task", "instruction", v))
    labels_text = st.text_input("Labels (comma-separated; classification only)",
                                value=", ".join(d.get("labels") or []),
                                key=state.widget_key("task", "labels", v),
                                disabled=task_type != "classification")
    demos = _demos(d, v)
    tests = d.get("test") or []
    if tests:
        st.caption(f"{len(tests)} held-out test examples came with the file; they are used "
                   "only for the before/after evaluation, never for synthesis or training.")
    labels = [x.strip() for x in labels_text.split(",") if x.strip()] \
        if task_type == "classification" else []
    return {"name": name, "instruction": instruction, "task_type": task_type,
            "labels": labels, "metric": metric, "demos": demos, "test": tests,
            "source": d.get("source", "")}


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
