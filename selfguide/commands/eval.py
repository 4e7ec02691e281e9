"""``selfguide eval --run NAME [--test FILE | --unlabeled FILE] [--limit N]``: base vs
base + adapter.

Parses options into an ``EvalConfig``, calls :func:`selfguide.evaluation.predict.evaluate` inside a
``jobs.worker`` and prints the before/after table, or, for a run without held-out rows (or
with ``--unlabeled``), the label-free comparison: label shares, entropy, agreement and the
collapse verdict. Nothing heavy is imported at load time.
"""

from __future__ import annotations

import argparse

NAME = "eval"
HELP = "Evaluate the base model and the tuned model on held-out examples (greedy)."
ORDER = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selfguide.settings.evaluation import EvalConfig
    from selfguide.settings.fields import add_dataclass_args

    parser.add_argument("--run", required=True, help="Run name (in the workspace).")
    parser.add_argument("--test", default=None,
                        help="Held-out examples: JSONL/CSV with input and output columns, or "
                             "an NIv2 task file (default: the task's own test instances).")
    parser.add_argument("--unlabeled", default=None, metavar="FILE",
                        help="Compare on inputs without labels: a text file (one input per "
                             "line) or JSONL/CSV with an 'input' column. Without it, a run "
                             "whose task has no held-out rows is compared on its held-out "
                             "synthetic inputs (never trained on).")
    add_dataclass_args(parser, EvalConfig)


def print_summary(name: str, summary: dict) -> None:
    from selfguide.evaluation import compare
    if summary.get("mode") == "unlabeled":
        print(compare.format_unlabeled(name, summary))
    else:
        _print_labelled(name, summary)
    advice = compare.recommendation(summary)
    if advice:
        print()
        print(f"COLLAPSE: {advice}")


def _print_labelled(name: str, summary: dict) -> None:
    from selfguide.evaluation import compare
    print(compare.format_table([compare.run_row(name, summary)]))
    table = compare.format_metric_rows(summary)
    if table:
        print()
        print(table)
    labels = compare.label_table(summary)
    if labels:
        print()
        print(labels)
    for warning in summary.get("warnings") or []:
        print()
        print(f"WARNING: {warning}")


def run(args: argparse.Namespace) -> int:
    from selfguide import jobs
    from selfguide.evaluation import predict as evaluation
    from selfguide.runs import store
    from selfguide.runs.rundir import RunDir
    from selfguide.settings.evaluation import EvalConfig
    from selfguide.settings.fields import from_dict, overrides_from_args

    cfg = from_dict(EvalConfig, overrides_from_args(args, EvalConfig))
    run_dir = store.resolve_run_dir(args.run, must_exist=True)
    jobs.check_inputs_idle(run_dir, "eval")
    RunDir(run_dir).check_inputs("eval")
    task = RunDir(run_dir).read_task(required=True)
    if args.test and args.unlabeled:
        from selfguide.errors import ConfigError
        raise ConfigError("Give --test (inputs with expected outputs) or --unlabeled (inputs "
                          "only), not both.")
    evaluation.plan(RunDir(run_dir), task, args.test, args.unlabeled)  # fail early
    # The worker writes the manifest's eval stage (running, then done/failed) with the job.
    with jobs.worker(run_dir, "eval", manifest=True) as events:
        summary = evaluation.evaluate(run_dir, cfg, test_file=args.test,
                                      unlabeled_file=args.unlabeled, events=events)
        events.record(metric=summary["metric"], before=summary.get("before"),
                      after=summary["after"])
    print_summary(args.run, summary)
    return 0
