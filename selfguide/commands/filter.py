"""``selfguide filter --run NAME [options]``: re-apply the filters without generating.

Starts from the run's stored filter settings, applies the options given, rewrites
candidates.parquet, the dataset and its report, and prints the funnel. Fast: no model.
Works for every synthesis method: the run's ``config.json`` names it, and the options of
its filter config apply (those of another method are refused).
"""

from __future__ import annotations

import argparse

NAME = "filter"
HELP = "Re-apply filters (thresholds, label strategy) to a run and rewrite its dataset."
ORDER = 30


def _filter_configs() -> list[type]:
    from selfguide import methods

    return [methods.get(n).filter_config for n in methods.names()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selfguide.commands._methods import add_config_args

    parser.add_argument("--run", required=True, help="Run name (in the workspace).")
    add_config_args(parser, _filter_configs())


def run(args: argparse.Namespace) -> int:
    from selfguide import jobs, methods
    from selfguide.commands._methods import reject_foreign
    from selfguide.runs.rundir import RunDir
    from selfguide.settings.fields import overrides_from_args, replace

    run_dir = RunDir.named(args.run, must_exist=True)
    jobs.check_inputs_idle(run_dir.path, "filter")
    run_dir.check_inputs("filter")  # a damaged file fails here, before the dataset changes
    method = methods.for_run(run_dir)
    reject_foreign(args, _filter_configs(), [method.filter_config], method.title)
    old = method.saved_filters(run_dir)
    filters = replace(old, **overrides_from_args(args, method.filter_config))
    with jobs.worker(run_dir.path, "filter"):  # train and eval see it running
        report = method.refilter(run_dir.path, filters)
    print(method.format_report(report))
    return 0
