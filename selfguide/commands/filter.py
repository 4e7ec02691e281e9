"""``selfguide filter --run NAME [options]``: re-apply the filters without generating.

Starts from the run's stored filter settings, applies the options given, rewrites
candidates.parquet, the dataset and its report, and prints the funnel. Fast: no model.
"""

from __future__ import annotations

import argparse

NAME = "filter"
HELP = "Re-apply filters (thresholds, label strategy) to a run and rewrite its dataset."
ORDER = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selfguide.config import add_dataclass_args
    from selfguide.configs.synthesis import FilterConfig

    parser.add_argument("--run", required=True, help="Run name (in the workspace).")
    add_dataclass_args(parser, FilterConfig)


def run(args: argparse.Namespace) -> int:
    from selfguide import jobs, selfguide_pipeline, store
    from selfguide.config import overrides_from_args, replace
    from selfguide.configs.synthesis import FilterConfig
    from selfguide.dataset import format_report

    run_dir = store.resolve_run_dir(args.run, must_exist=True)
    jobs.check_inputs_idle(run_dir, "filter")
    _, _, old, _ = selfguide_pipeline.load_run(run_dir)
    filters = replace(old, **overrides_from_args(args, FilterConfig))
    report = selfguide_pipeline.refilter(run_dir, filters)
    print(format_report(report))
    return 0
