"""``selfguide merge --run NAME --out DIR``: write base + adapter as one bf16 model."""

from __future__ import annotations

import argparse

NAME = "merge"
HELP = "Merge the run's adapter into its base model and save it (bf16, safetensors)."
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="Run name (in the workspace).")
    parser.add_argument("--out", required=True, help="New (or empty) output directory.")


def run(args: argparse.Namespace) -> int:
    from selfguide import jobs, store, training

    run_dir = store.resolve_run_dir(args.run, must_exist=True)
    jobs.check_inputs_idle(run_dir, "merge")
    out = training.merge(run_dir, args.out)
    print(f"merged model written to {out}")
    return 0
