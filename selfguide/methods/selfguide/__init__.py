"""SELF-GUIDE (Zhao et al. 2024): the task's own model writes inputs for it, then labels them
by self-consistency.

The folder: ``config`` (SynthesisConfig, FilterConfig, presets), ``prompts`` (the stage-1
prompt), ``stages`` (stage 1 inputs, stage 2 labels), ``labelling`` (how the model labels,
and the evidence), ``choice`` (protocol and strategy from that evidence: ``LabelChoice``),
``consistency`` (voting), ``strategies`` (THE table of label strategies; rank / calibrated
labels), ``filters``, ``table`` (candidates + dataset), ``report`` and ``pipeline`` (the
run); ``label_inputs`` (``selfguide label``: given inputs labelled as stage 2 would);
``sources`` (the user's own unlabeled inputs, origin ``given``) and ``documents`` (passages
that ground stage-1 prompts); ``relabel`` (another round: the tuned model answers the
inputs again, ``selfguide relabel``).
This module registers the method; nothing heavy is imported.
"""

from __future__ import annotations

from selfguide.methods import Method, lazy, register
from selfguide.methods.selfguide import config


def _refilter(run_dir, filters=None) -> dict:
    from selfguide.methods.selfguide.pipeline import refilter

    return refilter(run_dir, filters)


def _load_candidates(run_dir):
    from selfguide.methods.selfguide.table import load_candidates

    return load_candidates(run_dir)


def _load_settings(run_dir) -> tuple[config.SynthesisConfig, config.FilterConfig]:
    from selfguide.methods.selfguide.pipeline import load_run

    _, synth, filters, _ = load_run(run_dir)
    return synth, filters


def _filter_order() -> tuple[str, ...]:
    from selfguide.methods.selfguide.filters import ORDER

    return ORDER


METHOD = register(Method(
    name="selfguide", title="SELF-GUIDE", stage="synthesize", command="synthesize",
    synthesis_config=config.SynthesisConfig, filter_config=config.FilterConfig,
    run=lazy("selfguide.methods.selfguide.pipeline", "run_synthesis"),
    format_report=lazy("selfguide.methods.selfguide.report", "format_report"),
    refilter=_refilter, load_candidates=_load_candidates, load_settings=_load_settings,
    frozen_filters=(), filter_order=_filter_order(), presets=config.PRESETS,
    summary="SELF-GUIDE (Zhao et al. 2024): inputs, then self-consistent outputs",
    subtitle="Step 3 of 6 · The model writes new task inputs from your demonstrations, then "
             "answers each one several times; answers that agree become training examples.",
    citation="SELF-GUIDE (Zhao et al., 2024)", tag="self-guide", order=0, needs_task=True,
    job_stages={"inputs": "writing new inputs", "annotate": "answering the inputs"},
    studio="studio.views.methods.selfguide",
    relabel=lazy("selfguide.methods.selfguide.relabel", "relabel")))
