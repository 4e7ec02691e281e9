"""Finetune page: QLoRA settings, Launch / Cancel / Resume, live loss curve and progress."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from selfguide.errors import DatasetError, SelfGuideError
from selfguide.runs.rundir import RunDir
from selfguide.settings import cli as cliargs
from selfguide.settings.training import TrainConfig
from selfguide.training import trainer as training
from studio.app import charts, frame, messages, presets, widgets
from studio.app import jobs as sjobs
from studio.views import finetune as train_settings
from studio.views import model as model_views

frame.ensure(__file__)  # a page started on its own runs inside the frame

st.title("Finetune")
st.caption("Step 5 of 6 · Teach the model its own filtered examples with LoRA adapters "
           "on a frozen base. Only the small adapter is saved.")
widgets.show_flash()
run = widgets.require_run("Finetuning")
run_dir = RunDir.named(run)
model_views.run_model_note(run_dir)

# --------------------------------------------------------------------------- dataset check
records, val_records = [], []
stats, dataset_error = None, None
try:
    records, val_records = training.load_train_records(run_dir.path)
    stats = training.check_run_dataset(run_dir.path, records,
                                       max_label_share=TrainConfig().max_label_share)
except DatasetError as exc:
    dataset_error = exc
except SelfGuideError as exc:
    widgets.show_error(exc)
    st.stop()

if stats is not None:
    st.success(f"Dataset: {stats['rows']} rows, {stats['distinct_completions']} distinct "
               "completions" + (f", labels {', '.join(stats['labels'])}" if stats["labels"]
                                else "") + ".", icon=":material/dataset:")
    if stats.get("own_single_label"):
        st.warning(f"Every row has the label {stats['labels'][0]!r}: the model's own answer "
                   "to every input (see the Filter page). The tuned model will learn the "
                   "answer format and this one answer, not the task; a bigger model would "
                   "help.", icon=":material/warning:")
elif not records:
    widgets.show_error(dataset_error)
    st.page_link(frame.page_path("filter"), label="Go to Filter and save the dataset",
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
train_settings.show_running_job(run_dir, jstat)  # a reload shows the job's settings
with st.expander("Settings", expanded=not running and jstate != "finished"):
    if running:
        st.caption("The settings of the training job that is running.")
    values = widgets.preset_form(
        TrainConfig, train_settings.FORM, presets.TRAIN, page=train_settings.PAGE,
        help=presets.TRAIN_HELP, default=presets.TRAIN_DEFAULT, columns=3,
        sliders={"val_fraction": (0.0, 0.45, 0.05), "lora_dropout": (0.0, 0.5, 0.05)})
    cfg = widgets.build_config(TrainConfig, values)
    st.caption(train_settings.method_caption(cfg))

world = (RunDir(run_dir).read_train_config() or {}).get("world_size") or 1
ckpt = training.last_complete_checkpoint(run_dir.checkpoints_dir, world_size=world)
can_resume = ckpt is not None and jstate in ("cancelled", "failed", "interrupted")
label = f"Resume from {ckpt.name}" if can_resume else "Launch training"
if caveat := messages.label_caveat(run_dir.read_report()):  # the Filter page's, before Launch
    st.warning(caveat, icon=":material/warning:")
st.caption(train_settings.split_line(records, val_records, cfg))
argv = cliargs.job_argv("train", run=run, configs=[cfg]) if cfg is not None else None
if argv:
    st.caption("The same from a terminal:")
    st.code(train_settings.cli_command(argv), language="bash")
c1, c2 = st.columns([1, 3])
blocked = running or cfg is None or (dataset_error is not None and not cfg.force)
launch = c1.button(label, type="primary", icon=":material/rocket_launch:", disabled=blocked)
if launch and widgets.start_job(run, "train", argv):
    st.rerun()
if can_resume:
    c2.caption("Training stopped before the end; it resumes from the last complete "
               "checkpoint with the same settings.")


def loss_chart(evs: list[dict]) -> None:
    pts = sjobs.loss_points(evs)
    if not pts:
        st.caption("The loss curve appears after the first logged step.")
        return
    train_settings.figures(evs)
    st.altair_chart(charts.loss(pd.DataFrame(pts)), width="stretch")
    last = next((e for e in reversed(evs) if e.get("type") == "loss"), None)
    if last:
        st.caption(f"step {last.get('step')} · loss {float(last['loss']):.4f} · "
                   f"{last.get('tokens_per_s', '?')} tokens/s")


widgets.job_panel(run, "train", title="Training job", extra=loss_chart)

metrics = run_dir.read_train_metrics()
if jstate == "finished" and isinstance(metrics, dict):
    m = st.columns(4)
    m[0].metric("Steps", metrics.get("steps"))
    m[1].metric("Train loss", f"{metrics.get('train_loss', float('nan')):.4f}")
    m[2].metric("Tokens/s", metrics.get("tokens_per_s"))
    m[3].metric("Wall time", f"{metrics.get('wall_s', 0):.0f} s")
    st.caption(train_settings.kept_checkpoint(metrics))
    st.page_link(frame.page_path("compare"), label="Next: compare before and after",
                 icon=":material/arrow_forward:")
