"""``selfguide synthesize TASK --run NAME [--method NAME]``: a run's training set.

The default method, SELF-GUIDE: loads the task, merges the preset with explicit options,
writes task.json/config.json, loads the model and runs
:func:`selfguide.methods.selfguide.pipeline.run_synthesis` inside a ``jobs.worker`` (status,
heartbeat, events, cancel). Rerunning the same command resumes after the last finished
round/batch. Prints a progress bar per stage and the final funnel. Another method
(``--method selfinstruct``) runs through its own command (``selfguide self-instruct``),
with the same options. Nothing heavy is imported at module load.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from selfguide.runs.rundir import RunDir

NAME = "synthesize"
HELP = "Generate a task's training set with SELF-GUIDE (inputs, self-labels, filters)."
ORDER = 20


def _others() -> list:
    """The registered methods other than SELF-GUIDE (they run through their command)."""
    from selfguide import methods

    return [m for m in methods.all_methods() if m.command != NAME]


def _other_configs() -> list[type]:
    return [c for m in _others() for c in (m.synthesis_config, m.filter_config)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selfguide import methods
    from selfguide.commands._methods import add_config_args
    from selfguide.methods.selfguide.config import PRESETS, FilterConfig, SynthesisConfig
    from selfguide.settings.fields import ModelConfig, add_dataclass_args

    parser.add_argument("task", nargs="?", default=None,
                        help="Task file (own JSON/YAML, NIv2 JSON, CSV/JSONL); required for "
                             "SELF-GUIDE, optional for Self-Instruct (the target task).")
    parser.add_argument("--method", choices=methods.names(), default=methods.default().name,
                        help="Synthesis method: " + "; ".join(
                            f"{m.name} ({m.summary or m.title})" for m in methods.all_methods())
                        + ". Another method runs through its own command with these options.")
    parser.add_argument("--seed-tasks", default=None,
                        help="Self-Instruct: seed pool in the paper's seed_tasks.jsonl schema "
                             "(default: the shipped pool; a rerun reuses the run's copy).")
    parser.add_argument("--run", default=None, help="Run name (default: from the task file).")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick",
                        help="quick: <= 10 min on a 2-core CPU with the embedded model; "
                             "paper: 40 rounds x 10 prompts, 10 samples (Zhao et al. 2024).")
    parser.add_argument("--instruction", default=None,
                        help="Instruction for CSV/JSONL task files without one.")
    parser.add_argument("--overwrite", action="store_true",
                        help="Discard data generated earlier in this run with other settings.")
    add_source_arguments(parser)
    add_dataclass_args(parser, ModelConfig)
    add_dataclass_args(parser, SynthesisConfig)
    add_dataclass_args(parser, FilterConfig, exclude=("seed",))
    taken = tuple(f.name for c in (SynthesisConfig, FilterConfig)
                  for f in dataclasses.fields(c))
    add_config_args(parser, _other_configs(), exclude=taken)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """SELF-GUIDE's sources beyond the demos: the user's own inputs and documents."""
    parser.add_argument("--inputs", default=None, metavar="FILE",
                        help="Your own unlabeled inputs: CSV, JSONL, JSON list, TXT (one per "
                             "line), Parquet, or a folder saved with datasets' save_to_disk. "
                             "The model labels them as it labels its own; they are copied "
                             "into the run.")
    parser.add_argument("--column", default=None,
                        help="The column of --inputs that holds the text (default: 'input', "
                             "then 'text', then a file's only column).")
    parser.add_argument("--mix", choices=("fill", "only"), default=None,
                        help="fill (default with --inputs): your inputs first, then generated "
                             "rounds top up to the preset's size; only: your inputs replace "
                             "the generated ones.")
    parser.add_argument("--documents", nargs="+", default=None, metavar="PATH",
                        help="Folders or files (.txt, .md, .pdf, .docx) cut into passages; "
                             "each new input is written on one of them (its first field taken "
                             "from the passage where the examples open with one, such as "
                             "'Premise:'; else the passage is shown) so the inputs follow "
                             "your domain.")


def sources_from_args(args: argparse.Namespace):
    """``(GivenInputs | None, mix, documents settings | None)``, read and checked before the
    run folder exists."""
    from selfguide.errors import ConfigError
    from selfguide.methods.selfguide import sources

    inputs = getattr(args, "inputs", None)
    if inputs is None and (getattr(args, "column", None) or getattr(args, "mix", None)):
        raise ConfigError("--column and --mix need --inputs FILE.")
    if args.mix == "only" and getattr(args, "documents", None):
        raise ConfigError("--documents ground the inputs the model writes; with --mix only "
                          "nothing is written.", hint="Use --mix fill, or drop --documents.")
    given = sources.read_given(inputs, args.column) if inputs else None
    docs = None
    if getattr(args, "documents", None):
        from selfguide.methods.selfguide import documents

        docs = documents.read_documents(args.documents)
    return given, args.mix or "fill", docs


def configs_from_args(args: argparse.Namespace):
    """(SynthesisConfig, FilterConfig, ModelConfig) from a preset plus explicit options."""
    from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig, preset
    from selfguide.settings.fields import ModelConfig, from_dict, overrides_from_args

    syn_over = overrides_from_args(args, SynthesisConfig)
    fil_over = overrides_from_args(args, FilterConfig)
    fil_over.pop("seed", None)
    synth, _ = preset(args.preset, synthesis=syn_over)
    _, filters = preset(args.preset, filters={**fil_over, "seed": synth.seed})
    model = from_dict(ModelConfig, overrides_from_args(args, ModelConfig))
    return synth, filters, model


# Files of a run that hold resumable work: a failed first attempt keeps the run for them.
_LAYOUT = RunDir(".")
KEEP = tuple(p.name for p in (_LAYOUT.inputs_file, _LAYOUT.annotations_file,
                              _LAYOUT.labelling_file, _LAYOUT.candidates_file))


def preflight(task, model, preset: str | None):
    """Model reference and weights, and whether the task's rows can be trained on with the
    preset's training settings: all before synthesis starts (issue 14, item 9)."""
    from selfguide.settings.fields import from_dict
    from selfguide.settings.training import PRESETS, TrainConfig
    from selfguide.training.fit import check_rows_fit

    return check_rows_fit(task, model, from_dict(TrainConfig, PRESETS.get(preset or "", {})))


def run_other(args: argparse.Namespace) -> int:
    """``--method`` other than SELF-GUIDE: the method's own command, with these options."""
    import importlib

    from selfguide import methods
    from selfguide.commands._methods import reject_foreign
    from selfguide.errors import ConfigError
    from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig

    method = methods.get(args.method)
    own = [method.synthesis_config, method.filter_config]
    reject_foreign(args, [SynthesisConfig, FilterConfig, *_other_configs()], own,
                   method.title)
    if not args.run:
        raise ConfigError(f"{method.title} needs --run NAME.")
    if args.overwrite or args.instruction or args.preset != "quick":
        raise ConfigError(f"{method.title} has no --overwrite, --instruction or --preset.")
    if args.inputs or args.documents or args.column or args.mix:
        raise ConfigError(f"{method.title} has no --inputs, --column, --mix or --documents.")
    args.preset = None  # synthesize's default preset is SELF-GUIDE's, not the method's
    module = method.command if "." in method.command else f"selfguide.commands.{method.command}"
    return importlib.import_module(module).run(args)


def _check_selfguide_args(args: argparse.Namespace) -> None:
    from selfguide.commands._methods import reject_foreign
    from selfguide.errors import ConfigError
    from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig

    if args.task is None:
        raise ConfigError("SELF-GUIDE needs a task file: 'selfguide synthesize TASK'.")
    if args.seed_tasks:
        raise ConfigError("--seed-tasks is a Self-Instruct option (--method selfinstruct).")
    reject_foreign(args, _other_configs(), [SynthesisConfig, FilterConfig], "SELF-GUIDE")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from selfguide import jobs, methods
    from selfguide.errors import DatasetError
    from selfguide.methods.selfguide import pipeline as selfguide_pipeline
    from selfguide.methods.selfguide.report import format_report
    from selfguide.runs import names as runnames
    from selfguide.runs import store
    from selfguide.task.formats import load_task

    if methods.get(args.method).command != NAME:
        return run_other(args)
    _check_selfguide_args(args)
    task = load_task(args.task, instruction=args.instruction)
    synth, filters, model = configs_from_args(args)
    given, mix, docs = sources_from_args(args)
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
    if given is not None:
        print(f"your inputs: {len(given.rows)} from {given.path} (column {given.column!r}"
              + (f", {given.skipped} blank rows skipped" if given.skipped else "")
              + f"), mix {mix}", file=sys.stderr, flush=True)
    try:
        # The worker writes the manifest's stage state (running, then done/failed) with the job.
        with jobs.worker(run_dir, "synthesize", manifest=True) as events:
            report = selfguide_pipeline.run_synthesis(run_dir, task, synth, filters, model,
                                                      overwrite=args.overwrite, events=events,
                                                      given=given, mix=mix, documents=docs)
            if not report.get("kept"):
                raise DatasetError("Synthesis produced no training example "
                                   f"({report.get('candidates', 0)} candidates, 0 kept).",
                                   hint="See the funnel with 'selfguide filter --run "
                                        f"{name}', loosen the filters, or add rounds.")
    except BaseException:
        if not existed:
            store.discard_new_run(run_dir, KEEP)
        raise
    print(format_report(report))
    print(f"dataset: {RunDir(run_dir).records_file('train')}")
    return 0
