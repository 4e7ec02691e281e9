"""The toy method's command: ``selfguide synthesize --method toymethod --run NAME``."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from toymethod import METHOD, ToyConfig, ToyFilters

    from selfguide import jobs
    from selfguide.runs import store
    from selfguide.settings.fields import from_dict, overrides_from_args

    run_dir = store.resolve_run_dir(args.run, create=True)
    synth = from_dict(ToyConfig, overrides_from_args(args, ToyConfig))
    filters = from_dict(ToyFilters, overrides_from_args(args, ToyFilters))
    with jobs.worker(run_dir, METHOD.stage, manifest=True):
        report = METHOD.run(run_dir, synth, filters)
    print(METHOD.format_report(report))
    return 0
