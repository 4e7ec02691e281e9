"""``selfguide compare RUN [RUN...]``: before/after metrics of several runs in one table."""

from __future__ import annotations

import argparse

NAME = "compare"
HELP = "Print the before/after evaluation of one or more runs side by side."
ORDER = 70


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", help="Run names (default: every run).")


def run(args: argparse.Namespace) -> int:
    from selfguide.evaluation import compare
    from selfguide.runs import store
    names = args.runs or store.list_runs()
    if not names:
        print("no runs in the workspace")
        return 0
    print(compare.format_table(compare.load_rows(names)))
    return 0
