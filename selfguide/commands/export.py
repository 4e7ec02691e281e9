"""``selfguide export --run NAME --format jsonl|alpaca|hf-dataset|prompt-completion|messages|
sharegpt [--output PATH]``: the run's training set, whatever method made it."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = ("Export a run's training set (jsonl prompt/completion, alpaca JSON, HF dataset, "
        "TRL prompt-completion, chat messages, ShareGPT) with a dataset card.")
ORDER = 35


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="Run name (in the workspace).")
    parser.add_argument("--format", choices=("jsonl", "alpaca", "hf-dataset",
                                             "prompt-completion", "messages", "sharegpt"),
                        default="jsonl",
                        help="jsonl: the training records; alpaca: instruction/input/output "
                             "list; hf-dataset: datasets.save_to_disk directory; "
                             "prompt-completion: TRL conversational prompt/completion; "
                             "messages: chat messages (user, assistant); sharegpt: "
                             "conversations (human, gpt). Each with a dataset card "
                             "(README.md) beside it.")
    parser.add_argument("--output", default=None,
                        help="Destination (default: <run>/export/...). Must not exist "
                             "(a new or empty directory for hf-dataset); links, devices and "
                             "FIFOs are never replaced.")
    parser.add_argument("--force", action="store_true",
                        help="Replace an existing regular file at --output.")


def run(args: argparse.Namespace) -> int:
    from selfguide import jobs
    from selfguide.runs.dataset import export
    from selfguide.runs.rundir import RunDir

    run = RunDir.named(args.run, must_exist=True)
    jobs.check_inputs_idle(run.path, "export")
    run.check_inputs("export")
    n = len(run.read_records())
    path = export(run, args.format, args.output, force=args.force)
    print(f"exported {n} records to {path}")
    return 0
