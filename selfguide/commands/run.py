"""``selfguide run TASK_FILE [--run NAME] [--preset quick|paper]``: the whole loop.

synthesize -> filter -> train -> eval (with ``--rounds N``: eval, relabel, train again per
extra round, issue 34), each stage through its own command (so each has its
job status, events and progress bar), then the final before/after table. A rerun resumes:
each stage skips or continues finished work as its own command does.
"""

from __future__ import annotations

import argparse
import sys
import time

NAME = "run"
HELP = "One command: synthesize, filter, train and evaluate a task, then print before/after."
ORDER = 5

# Evaluation settings per preset (training presets live in configs/training.py).
EVAL_PRESETS = {"quick": {"limit": 100}, "paper": {"limit": 0}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="Task file (own JSON/YAML, NIv2 JSON, CSV/JSONL).")
    parser.add_argument("--run", default=None, help="Run name (default: from the task file).")
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick",
                        help="quick: small budgets for a CPU; paper: the paper's sizes.")
    parser.add_argument("--limit", type=int, default=None,
                        help="Evaluate at most N held-out examples (default per preset).")
    parser.add_argument("--test", default=None, help="Held-out examples file for eval.")
    parser.add_argument("--rounds", default="1", metavar="N",
                        help="Rounds of data (default 1). N > 1: after training, the tuned "
                             "model answers the same inputs again (selfguide relabel), the "
                             "model is trained again from the base, N-1 times; each round is "
                             "evaluated and its files kept in rounds/<k>/.")
    from selfguide.settings.fields import ModelConfig, add_dataclass_args

    # The model of the whole loop: synthesis records it in config.json, and training and
    # evaluation take it from there (your own HF folder or GGUF file, any precision).
    add_dataclass_args(parser, ModelConfig)
    parser.add_argument("--unlabeled", default=None, metavar="FILE",
                        help="Inputs without labels to compare base and tuned on (one per "
                             "line, or JSONL/CSV with 'input'); default when the task has no "
                             "held-out rows: its held-out synthetic inputs.")
    from selfguide.commands.synthesize import add_source_arguments

    add_source_arguments(parser)  # your own inputs and documents (issue 36)


def source_argv(args: argparse.Namespace) -> list[str]:
    """``--inputs``/``--column``/``--mix``/``--documents`` as given, for synthesize."""
    out: list[str] = []
    for name in ("inputs", "column", "mix"):
        if getattr(args, name, None):
            out += [f"--{name}", str(getattr(args, name))]
    if getattr(args, "documents", None):
        out += ["--documents", *map(str, args.documents)]
    return out


def _stage(argv: list[str]) -> None:
    from selfguide.cli import build_parser
    from selfguide.errors import SelfGuideError

    parser = build_parser()
    args = parser.parse_args(argv)
    print(f"== {argv[0]} ==", file=sys.stderr, flush=True)
    rc = int(args.func(args) or 0)
    if rc != 0:
        raise SelfGuideError(f"Stage '{argv[0]}' failed (exit status {rc}).")


def _accepts(command: str, option: str) -> bool:
    """Whether ``selfguide COMMAND`` has ``option`` (stage commands evolve independently)."""
    from selfguide.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices.get(command)
    return sub is not None and option in sub._option_string_actions


def validate_early(args: argparse.Namespace) -> None:
    """Check every later stage's options before synthesis spends minutes (issue 14, item 6):
    the evaluation limit and test file, the training preset (synthesize, the first stage,
    checks the task file and the model before it writes anything)."""
    from selfguide.errors import DatasetError
    from selfguide.evaluation import predict as evaluation
    from selfguide.settings.evaluation import EvalConfig
    from selfguide.settings.fields import from_dict
    from selfguide.settings.training import PRESETS, TrainConfig

    from selfguide.errors import ConfigError

    rounds = str(getattr(args, "rounds", "1")).strip()
    if not rounds.isdigit() or int(rounds) < 1:
        raise ConfigError(f"--rounds {getattr(args, 'rounds', '')!r}: give 1 (synthesis "
                          "only) or more.", hint="2 adds one round: the tuned model answers "
                                                 "the inputs again and is trained again.")
    args.rounds = int(rounds)
    limit = args.limit if args.limit is not None else EVAL_PRESETS[args.preset]["limit"]
    from_dict(EvalConfig, {"limit": limit})
    from_dict(TrainConfig, PRESETS.get(args.preset, {}))
    if args.test and not evaluation.load_test_file(args.test):
        raise DatasetError(f"Test file {args.test} has no examples.",
                           hint="Add rows with 'input' and 'output', or drop --test.")


def model_argv(args: argparse.Namespace) -> list[str]:
    """The model options given to ``run`` (changed fields only), for synthesize."""
    from selfguide.settings.cli import config_argv
    from selfguide.settings.fields import ModelConfig, from_dict, overrides_from_args

    return config_argv(from_dict(ModelConfig, overrides_from_args(args, ModelConfig)))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from selfguide.evaluation import compare
    from selfguide.runs import names as runnames
    from selfguide.runs.rundir import RunDir

    name = args.run or runnames.slugify_run_name(Path(args.task).stem)
    runnames.validate_run_name(name)
    validate_early(args)
    t0 = time.monotonic()
    made = _dataset_round(name)  # a rerun of a run past round 1 resumes its later rounds
    if made == 1 and not _labelling(name):
        syn = ["synthesize", args.task, "--run", name, *model_argv(args), *source_argv(args)]
        if _accepts("synthesize", "--preset"):
            syn += ["--preset", args.preset]
        _stage(syn)
    run = RunDir.named(name, must_exist=True)
    if not run.has_dataset() and _accepts("filter", "--run"):
        _stage(["filter", "--run", name])  # synthesize normally filters and writes the dataset
    ev = ["eval", "--run", name, "--limit",
          str(args.limit if args.limit is not None else EVAL_PRESETS[args.preset]["limit"])]
    if args.test:
        ev += ["--test", args.test]
    if getattr(args, "unlabeled", None):
        ev += ["--unlabeled", args.unlabeled]
    for k in range(made + 1, int(getattr(args, "rounds", 1)) + 1):
        if _dataset_round(name) == k - 1 and not _labelling(name):
            _stage(["train", "--run", name, "--preset", args.preset])
            _stage(ev)  # round k-1 measured: its evaluation is kept with it in rounds/<k-1>/
        _stage(["relabel", "--run", name, "--round", str(k)])
    _stage(["train", "--run", name, "--preset", args.preset])
    _stage(ev)
    print(f"\n== {name}: done in {time.monotonic() - t0:.0f}s ==")
    lines = round_lines(run)
    if lines:
        print("Rounds (the later ones: the tuned model re-answered the inputs):", *lines,
              sep="\n  ")
    metrics = run.read_metrics() or {}
    if metrics.get("mode") == "unlabeled":
        print(compare.format_unlabeled(name, metrics))
    else:
        print(compare.format_table(compare.load_rows([name])))
        label = compare.label_table(metrics)
        if label:
            print(label)
    advice = compare.recommendation(metrics)
    if advice:
        print(f"\nCOLLAPSE: {advice}")
    return 0


def _dataset_round(name: str) -> int:
    """The round the run's dataset comes from (1 for a new run)."""
    from selfguide.runs import rounds
    from selfguide.runs.rundir import RunDir

    run = RunDir.named(name)
    if not run.exists():
        return 1
    return (rounds.dataset_round(run) or {}).get("round", 1)


def _labelling(name: str) -> bool:
    """Whether a relabel of the run was killed half way (it continues first)."""
    from selfguide.runs import rounds
    from selfguide.runs.rundir import RunDir

    run = RunDir.named(name)
    return run.exists() and rounds.state(run)["state"] == "labelling"


def round_lines(run) -> list[str]:
    """Each round's evaluation, when the run made more than one (issue 34): a before/after
    table with one row per round (labelled), else each round's summary line."""
    from selfguide.evaluation import compare
    from selfguide.runs import rounds

    kept = rounds.archived(run)
    if not kept:
        return []
    rows, out = [], []
    for k in [*kept, None]:
        src = run if k is None else rounds.archived_run(run, k)
        m = (src.read_metrics() if src is not None else None) or {}
        k = k or rounds.state(run)["current"]
        if m.get("mode") == "unlabeled":
            out.append(f"round {k}: {compare.unlabeled_lines(m)[0]}")
        elif m:
            rows.append(compare.run_row(f"round {k}", m, src.read_train_metrics()))
    return compare.format_table(rows).splitlines() if rows else out
