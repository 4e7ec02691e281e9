"""``selfguide synthesize TASK --run NAME``: SELF-GUIDE stage 1 + 2, filters, dataset.

Loads the task, merges the preset with explicit options, writes task.json/config.json,
loads the model and runs :func:`selfguide.selfguide_pipeline.synthesize` inside a
``jobs.worker`` (status, heartbeat, events, cancel). Rerunning the same command resumes
after the last finished round/batch. Prints a progress bar per stage and the final funnel.
Nothing heavy is imported at module load.
"""

from __future__ import annotations

import argparse
import sys

NAME = "synthesize"
HELP = "Generate a task's training set with SELF-GUIDE (inputs, self-labels, filters)."
ORDER = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selfguide.config import ModelConfig, add_dataclass_args
    from selfguide.configs.synthesis import PRESETS, FilterConfig, SynthesisConfig

    parser.add_argument("task", help="Task file (own JSON/YAML, NIv2 JSON, CSV/JSONL).")
    parser.add_argument("--run", default=None, help="Run name (default: from the task file).")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick",
                        help="quick: <= 10 min on a 2-core CPU with the embedded model; "
                             "paper: 40 rounds x 10 prompts, 10 samples (Zhao et al. 2024).")
    parser.add_argument("--instruction", default=None,
                        help="Instruction for CSV/JSONL task files without one.")
    parser.add_argument("--overwrite", action="store_true",
                        help="Discard data generated earlier in this run with other settings.")
    add_dataclass_args(parser, ModelConfig)
    add_dataclass_args(parser, SynthesisConfig)
    add_dataclass_args(parser, FilterConfig, exclude=("seed",))


def configs_from_args(args: argparse.Namespace):
    """(SynthesisConfig, FilterConfig, ModelConfig) from a preset plus explicit options."""
    from selfguide.config import ModelConfig, from_dict, overrides_from_args
    from selfguide.configs.synthesis import FilterConfig, SynthesisConfig, preset

    syn_over = overrides_from_args(args, SynthesisConfig)
    fil_over = overrides_from_args(args, FilterConfig)
    fil_over.pop("seed", None)
    synth, _ = preset(args.preset, synthesis=syn_over)
    _, filters = preset(args.preset, filters={**fil_over, "seed": synth.seed})
    model = from_dict(ModelConfig, overrides_from_args(args, ModelConfig))
    return synth, filters, model


# Files of a run that hold resumable work: a failed first attempt keeps the run for them.
KEEP = ("inputs.jsonl", "annotations.jsonl", "labelling.json", "candidates.parquet")


def preflight(task, model, preset: str | None):
    """Model reference and weights, and whether the task's rows can be trained on with the
    preset's training settings: all before synthesis starts (issue 14, item 9)."""
    from selfguide.config import from_dict
    from selfguide.configs.training import PRESETS, TrainConfig
    from selfguide.trainfit import check_rows_fit

    return check_rows_fit(task, model, from_dict(TrainConfig, PRESETS.get(preset or "", {})))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from selfguide import jobs, runnames, selfguide_pipeline, store
    from selfguide.dataset import format_report
    from selfguide.errors import DatasetError
    from selfguide.task import load_task

    task = load_task(args.task, instruction=args.instruction)
    synth, filters, model = configs_from_args(args)
    name = args.run or runnames.slugify_run_name(Path(args.task).stem)
    run_dir = store.resolve_run_dir(name)
    # Everything that can be checked is checked before the run directory exists.
    fit = preflight(task, model, args.preset)
    existed = run_dir.exists()
    run_dir = store.resolve_run_dir(name, create=True)
    print(f"run {name}: {task.name} ({task.task_type}), preset {args.preset}, "
          f"{synth.rounds} rounds x {synth.prompts_per_round} prompts, "
          f"{synth.n_samples} samples, model {model.model}", file=sys.stderr, flush=True)
    if fit.note:
        print(f"note: {fit.note}", file=sys.stderr, flush=True)
    try:
        with jobs.worker(run_dir, "synthesize") as events:
            report = selfguide_pipeline.run_synthesis(run_dir, task, synth, filters, model,
                                                      overwrite=args.overwrite, events=events)
            if not report.get("kept"):
                raise DatasetError("Synthesis produced no training example "
                                   f"({report.get('candidates', 0)} candidates, 0 kept).",
                                   hint="See the funnel with 'selfguide filter --run "
                                        f"{name}', loosen the filters, or add rounds.")
    except BaseException:
        store.set_stage(run_dir, "synthesize", "failed")
        if not existed:
            store.discard_new_run(run_dir, KEEP)
        raise
    print(format_report(report))
    print(f"dataset: {run_dir / 'dataset' / 'train.jsonl'}")
    return 0
