"""Finetune page: QLoRA settings, Launch / Cancel / Resume, live loss curve and progress."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from selfguide import store, training
from selfguide.configs.training import PRESETS, TrainConfig
from selfguide.errors import DatasetError, SelfGuideError
from studio import jobs as sjobs
from studio import state, widgets


st.title("Finetune")
st.caption("Step 5 of 6 · Teach the model its own filtered examples with LoRA adapters "
           "(QLoRA: the base stays frozen in 4-bit). Only the small adapter is saved.")
widgets.show_flash()
run = widgets.require_run("Finetuning")
run_dir = store.resolve_run_dir(run)

# A studio-only preset for a first look: a handful of steps, done in about a minute on a CPU.
TINY = {"max_steps": 6, "batch_size": 4, "val_fraction": 0.0, "save_strategy": "steps",
        "save_steps": 3, "logging_steps": 1, "epochs": 1.0}
ALL_PRESETS = {"tiny": TINY, **PRESETS, "custom": None}

# --------------------------------------------------------------------------- dataset check
records: list[dict] = []
stats, dataset_error = None, None
try:
    records, _val = training.load_train_records(run_dir)
    stats = training.check_dataset(records, task_type=training.run_task_type(run_dir))
except DatasetError as exc:
    dataset_error = exc
except SelfGuideError as exc:
    widgets.show_error(exc)
    st.stop()

if stats is not None:
    st.success(f"Dataset: {stats['rows']} rows, {stats['distinct_completions']} distinct "
               "completions" + (f", labels {', '.join(stats['labels'])}" if stats["labels"]
                                else "") + ".", icon=":material/dataset:")
elif not records:
    widgets.show_error(dataset_error)
    st.page_link("studio/pages/filter.py", label="Go to Filter and save the dataset",
                 icon=":material/filter_alt:")
    st.stop()
else:
    widgets.show_error(dataset_error)
    st.caption("You can still train by ticking 'force' below, but the result is unlikely to "
               "be useful.")

jstat = sjobs.status(run, "train")
jstate = sjobs.state_of(jstat)
running = sjobs.is_active(jstat)

# --------------------------------------------------------------------------- settings
with st.expander("Settings", expanded=not running and jstate != "finished"):
    values = widgets.preset_form(
        TrainConfig, "train.cfg", ALL_PRESETS, page="train",
        help="tiny: a few steps to see the loop work; quick/paper: the settings of "
             "`selfguide run --preset`.",
        columns=3, sliders={"val_fraction": (0.0, 0.45, 0.05), "lora_dropout": (0.0, 0.5, 0.05)})
    cfg = widgets.build_config(TrainConfig, values)
    st.caption("QLoRA runs the frozen base in 4-bit NF4 (bitsandbytes); on a CPU this works "
               "but is slower than on a GPU.")

ckpt = training.last_complete_checkpoint(run_dir / "train" / "checkpoints")
can_resume = ckpt is not None and jstate in ("cancelled", "failed", "interrupted")
label = f"Resume from {ckpt.name}" if can_resume else "Launch training"
c1, c2 = st.columns([1, 3])
blocked = running or cfg is None or (dataset_error is not None and not cfg.force)
launch = c1.button(label, type="primary", icon=":material/rocket_launch:", disabled=blocked)
if launch and widgets.start_job(run, "train", ["train", "--run", run,
                                               *sjobs.config_argv(cfg)]):
    st.rerun()
if can_resume:
    c2.caption("Training stopped before the end; it resumes from the last complete "
               "checkpoint with the same settings.")


def loss_chart(evs: list[dict]) -> None:
    pts = sjobs.loss_points(evs)
    if not pts:
        st.caption("The loss curve appears after the first logged step.")
        return
    df = pd.DataFrame(pts)
    st.altair_chart(alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("step:Q"), y=alt.Y("loss:Q", scale=alt.Scale(zero=False)),
        color=alt.Color("kind:N", title=None), tooltip=["step", "loss", "kind"]),
        width="stretch")
    last = next((e for e in reversed(evs) if e.get("type") == "loss"), None)
    if last:
        st.caption(f"step {last.get('step')} · loss {float(last['loss']):.4f} · "
                   f"{last.get('tokens_per_s', '?')} tokens/s")


widgets.job_panel(run, "train", title="Training job", extra=loss_chart)

metrics = store.read_json(run_dir / "train" / "metrics.json", default=None)
if jstate == "finished" and isinstance(metrics, dict):
    m = st.columns(4)
    m[0].metric("Steps", metrics.get("steps"))
    m[1].metric("Train loss", f"{metrics.get('train_loss', float('nan')):.4f}")
    m[2].metric("Tokens/s", metrics.get("tokens_per_s"))
    m[3].metric("Wall time", f"{metrics.get('wall_s', 0):.0f} s")
    st.page_link("studio/pages/compare.py", label="Next: compare before and after",
                 icon=":material/arrow_forward:")
