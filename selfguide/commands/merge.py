"""``selfguide merge --run NAME --out DIR``: write base + adapter as one bf16 model, with a
model card (README.md)."""

from __future__ import annotations

import argparse

NAME = "merge"
HELP = "Merge the run's adapter into its base model and save it (bf16, safetensors)."
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="Run name (in the workspace).")
    parser.add_argument("--out", required=True, help="New (or empty) output directory.")


def run(args: argparse.Namespace) -> int:
    from selfguide import jobs
    from selfguide.models import adapters
    from selfguide.runs import store
    from selfguide.runs.rundir import RunDir

    run_dir = store.resolve_run_dir(args.run, must_exist=True)
    jobs.check_inputs_idle(run_dir, "merge")
    RunDir(run_dir).check_inputs("merge")
    out = adapters.merge(run_dir, args.out)
    write_model_card(run_dir, out)
    print(f"merged model written to {out}")
    return 0


def write_model_card(run_dir, out) -> None:
    """README.md (Hugging Face model card) in the merged folder, from the run's files."""
    from selfguide.export import cards
    files = sorted(p.name for p in out.iterdir() if p.name != "README.md")
    cards.write_card(out, cards.model_card(cards.run_facts(run_dir), files=files))
