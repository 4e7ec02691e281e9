"""Task page: load an example, import a file or write a task; validate; save it to a run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from selfguide import store
from selfguide import task as sgtask
from selfguide.errors import SelfGuideError
from studio import runs as sruns
from studio import state, widgets


REPO = Path(__file__).resolve().parents[1]

st.title("Task")
st.caption("Step 2 of 6 · Say what the expert should do: an instruction, at least 3 "
           "input → output demonstrations, and for classification the label set.")
widgets.show_flash()


def example_tasks() -> dict[str, Path]:
    """Example task files shipped with the package and the repository, by file name."""
    found: dict[str, Path] = {}
    pkg = Path(sgtask.__file__).resolve().parent / "data"
    for d in (REPO / "examples", pkg):
        for pattern in ("*.json", "*.yaml", "*.yml"):
            for p in sorted(d.glob(pattern)):
                found.setdefault(p.name, p)
    return found


def set_task(spec: sgtask.TaskSpec) -> None:
    state.set_task_draft(spec.to_dict())
    state.bump_form("task")  # new widgets that start from the new draft


# --------------------------------------------------------------------------- import
examples = example_tasks()
src_tabs = st.tabs(["Example task", "Import a file"])
with src_tabs[0]:
    if examples:
        c1, c2 = st.columns([3, 1])
        pick = c1.selectbox("Example", list(examples), key=state.widget_key("task", "example"),
                            label_visibility="collapsed")
        if c2.button("Load example", icon=":material/upload_file:", type="primary"):
            try:
                set_task(sgtask.load_task(examples[pick]))
                st.rerun()
            except SelfGuideError as exc:
                widgets.show_error(exc)
    else:
        st.info("No example tasks are installed.")
with src_tabs[1]:
    up = st.file_uploader("Task file: our JSON/YAML, a Natural Instructions v2 task, or a "
                          "CSV/JSONL of input,output rows", type=["json", "yaml", "yml", "csv",
                                                                   "jsonl"],
                          key=state.widget_key("task", "upload"))
    if up is not None and st.button("Import", icon=":material/file_open:"):
        try:
            set_task(sgtask.parse_task_bytes(up.getvalue(), up.name))
            st.rerun()
        except SelfGuideError as exc:
            widgets.show_error(exc)

# --------------------------------------------------------------------------- editor
d = state.task_draft()
if d is None and state.current_run():
    saved = store.read_json(store.resolve_run_dir(state.current_run()) / "task.json")
    if isinstance(saved, dict):
        d = saved
if d is None:
    d = {"name": "my-task", "instruction": "", "demos": [], "task_type": "generation",
         "labels": [], "metric": "rouge_l", "test": [], "source": ""}

st.subheader("Definition")
v = state.form_version("task")
c1, c2, c3 = st.columns([2, 1, 1])
name = c1.text_input("Name", value=d.get("name", ""), key=state.widget_key("task", "name", v))
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

st.markdown("**Demonstrations** — edit cells, add or delete rows.")
demos_df = pd.DataFrame(d.get("demos") or [], columns=["input", "output"]).astype(str)
edited = st.data_editor(
    demos_df, num_rows="dynamic", hide_index=True, width="stretch",
    key=state.widget_key("task", "demos", v),
    column_config={"input": st.column_config.TextColumn("input", width="large"),
                   "output": st.column_config.TextColumn("output", width="medium")})
tests = d.get("test") or []
if tests:
    st.caption(f"{len(tests)} held-out test examples came with the file; they are used only "
               "for the before/after evaluation, never for synthesis or training.")

demos = [{"input": str(r["input"] or ""), "output": str(r["output"] or "")}
         for r in edited.fillna("").to_dict("records")
         if str(r["input"] or "").strip() or str(r["output"] or "").strip()]
candidate = {"name": name, "instruction": instruction, "task_type": task_type,
             "labels": [x.strip() for x in labels_text.split(",") if x.strip()]
             if task_type == "classification" else [],
             "metric": metric, "demos": demos, "test": tests, "source": d.get("source", "")}

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


spec = validate(candidate)

# --------------------------------------------------------------------------- save
st.subheader("Use this task")
run = state.current_run()
if run:
    st.caption(f"Saves the task into the current run **{run}**. The next steps read it from "
               "there.")
else:
    st.caption("Creates a new run named after the task and saves the task into it.")
if st.button("Save task to run", type="primary", icon=":material/save:", disabled=spec is None):
    try:
        target = run or sruns.unique_name(spec.name)
        run_dir = store.resolve_run_dir(target, create=True)
        store.atomic_write_json(run_dir / "task.json", spec.to_dict())
        store.update_manifest(run_dir, name=target, task=spec.name)
        state.set_run(target)
        state.flash("success", f"Task '{spec.name}' saved to run '{target}'.")
        st.rerun()
    except SelfGuideError as exc:
        widgets.show_error(exc)
if run and (store.resolve_run_dir(run) / "task.json").is_file():
    st.page_link("studio/pages/synthesize.py", label="Next: synthesize training data",
                 icon=":material/arrow_forward:")
