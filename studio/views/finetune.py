"""The Finetune page's settings panel helpers: the settings of a running job, and a caption
that says what the chosen method and precision do.

What it does: reads the settings a train job runs with from its argv (as started, through
``selfguide.settings.cli.config_from_argv``), falling back to the run's ``train_config.json``,
and puts them into the settings form once per job, so that a reload during a job shows the
job's settings rather than the preset's; describes the training method in plain words.

What it does not do: start jobs or draw the form (``studio.app.widgets.preset_form``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from selfguide.errors import SelfGuideError
from selfguide.runs.rundir import RunDir
from selfguide.settings import cli as cliargs
from selfguide.settings import fields as sgconfig
from selfguide.settings import training as traincfg
from selfguide.settings.training import TrainConfig
from studio.app import jobs as sjobs
from studio.app import presets, state

FORM = "train.cfg"
PAGE = "train"
CUSTOM = "custom"
_SHOWN = "train.cfg.job"  # the job whose settings the form was last filled from


def job_settings(run_dir: RunDir, jstat: Any) -> dict | None:
    """The TrainConfig fields of the train job ``jstat`` as a dict, or None if unknown."""
    argv = list(getattr(jstat, "argv", None) or [])
    if argv[:1] == ["train"]:
        try:
            return dataclasses.asdict(cliargs.config_from_argv(TrainConfig, argv,
                                                               presets=traincfg.PRESETS))
        except SelfGuideError:
            pass
    try:
        saved = RunDir(run_dir).read_train_config() or {}
    except SelfGuideError:  # damaged: the form starts from the defaults; train says why
        saved = {}
    train = saved.get("train")
    if not isinstance(train, dict):
        return None
    try:
        return dataclasses.asdict(sgconfig.from_dict(TrainConfig, train, strict=False))
    except SelfGuideError:
        return None


def show_running_job(run_dir: RunDir, jstat: Any) -> bool:
    """While a train job runs, fill the form with its settings (once per job).

    The preset picker shows the preset the job runs with, else ``custom``. Returns
    True when the form was (re)filled in this call.
    """
    if not sjobs.is_active(jstat):
        return False
    job_id = f"{run_dir.name}:{getattr(jstat, 'started', None) or getattr(jstat, 'pid', '')}"
    if state.draft(_SHOWN).get("job") == job_id:
        return False
    values = job_settings(run_dir, jstat)
    if values is None:
        return False
    state.set_draft(FORM, values)
    state.set_draft(_SHOWN, {"job": job_id})
    state.set_widget_value(PAGE, "preset", preset_of(values))
    state.bump_form(FORM)
    return True


def preset_of(values: dict) -> str:
    """The name of the preset whose settings are ``values``, else ``custom``."""
    for name, over in presets.TRAIN.items():
        if over is not None and \
                dataclasses.asdict(sgconfig.from_dict(TrainConfig, over)) == values:
            return name
    return CUSTOM


def method_caption(cfg: TrainConfig | None) -> str:
    """What the chosen method/precision does, in the words of the form."""
    method = cfg.method if cfg is not None else "auto"
    precision = cfg.precision if cfg is not None else "auto"
    if precision == "auto":
        precision = "bf16 where this machine computes it natively, else fp32"
    if method == "qlora":
        return ("QLoRA: the frozen base runs in 4-bit NF4 (bitsandbytes) and computes in bf16 "
                "where this machine has it natively, else fp32; only the small LoRA adapter "
                "is trained. On a CPU this works but is slower than on a GPU.")
    if method == "lora":
        return (f"LoRA: the frozen base runs in {precision}; only the small LoRA adapter is "
                "trained and saved.")
    if method == "full":
        return ("Full finetuning: every weight is updated, in fp32 (tiny models only); the "
                "whole model is saved.")
    from selfguide.models import hardware

    here = ("this machine's CPU has native bf16, so QLoRA" if hardware.bf16_is_fast("cpu")
            else "this machine's CPU has no native bf16, so LoRA on an fp32 base")
    return ("auto: QLoRA (4-bit base) on a CUDA GPU and on a CPU with native bf16; on a CPU "
            "without it LoRA on an fp32 base, which trains faster there (or QLoRA when only a "
            f"4-bit base fits in memory); only the small LoRA adapter is trained. Without a "
            f"GPU: {here}.")


# --------------------------------------------------------------------------- training view

def _last(evs: list[dict], kind: str, field: str) -> dict | None:
    return next((e for e in reversed(evs) if e.get("type") == kind
                 and e.get(field) is not None), None)


def figures(evs: list[dict]) -> None:
    """Epoch, learning rate, train and validation loss beside the curve (the last logged
    values; the validation loss with its change since the epoch before)."""
    import streamlit as st

    loss = _last(evs, "loss", "loss")
    if loss is None:
        return
    begin = _last(evs, "train_begin", "max_steps")
    val = [e for e in evs if e.get("type") == "eval" and e.get("eval_loss") is not None]
    c = st.columns(5)
    c[0].metric("Epoch", f"{float(loss.get('epoch') or 0):.2f}")
    c[1].metric("Step", f"{loss.get('step')}" + (f" of {begin['max_steps']}" if begin else ""))
    lr = loss.get("lr")
    c[2].metric("Learning rate", "—" if lr is None else f"{float(lr):.2e}",
                help="The optimizer's learning rate at the last logged step (warm-up and "
                     "schedule applied).")
    c[3].metric("Train loss", f"{float(loss['loss']):.4f}")
    if val:
        prev = float(val[-2]["eval_loss"]) if len(val) > 1 else None
        now = float(val[-1]["eval_loss"])
        c[4].metric("Validation loss", f"{now:.4f}",
                    delta=None if prev is None else f"{now - prev:+.4f}", delta_color="inverse",
                    help="Loss on the held-back validation rows after each epoch: lower is "
                         "better; rising while the train loss falls means overfitting.")
    else:
        c[4].metric("Validation loss", "—", help="No validation yet (after each epoch), or "
                                                "validation is off.")


def kept_checkpoint(metrics: dict) -> str:
    """Which weights training kept, and why, in words."""
    best = metrics.get("best_checkpoint")
    losses = [e for e in metrics.get("eval_losses") or [] if e.get("eval_loss") is not None]
    if best and losses:
        low = min(losses, key=lambda e: e["eval_loss"])
        return (f"Kept {best}: the lowest validation loss ({low['eval_loss']:.4f}, epoch "
                f"{float(low.get('epoch') or 0):.0f} of {len(losses)} validated), as "
                "'select best' asks.")
    if losses:
        return (f"Kept the last step's weights (validation loss {losses[-1]['eval_loss']:.4f}); "
                "'select best' was off.")
    return "Kept the last step's weights: there was no validation to choose by."


def split_line(records: list[dict], val_records: list[dict], cfg: TrainConfig | None) -> str:
    """THE validation split the training will use (``trainer.validation_split``)."""
    from selfguide.training import trainer

    if cfg is None:
        return ""
    train, val, why = trainer.validation_split(records, val_records, cfg)
    if val:
        return (f"Validation: {len(val)} of {len(train) + len(val)} rows held back ({why}) to "
                f"validate each epoch{' and keep the best one' if cfg.select_best else ''}; "
                f"{len(train)} rows train.")
    return f"Validation: none ({why}); all {len(train)} rows train."


def cli_command(argv: list[str]) -> str:
    """The command line that does what Launch does."""
    import shlex

    return "selfguide " + shlex.join(argv)
