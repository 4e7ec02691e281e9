"""``selfguide relabel --run NAME [--round K]``: one more round (issue 34), off by default.

The run's tuned model (base + adapter) answers the run's synthetic inputs again, with the
same stage-2 settings, and the filters write a new dataset; round K-1's files are kept in
``rounds/<K-1>/``. Then ``selfguide train --run NAME`` trains again from the base model on
the new dataset and ``selfguide eval`` measures it (``selfguide run --rounds 2`` does all of
it). The work is the run's method's ``relabel`` (methods without one refuse); a killed
relabel is continued by running it again.
"""

from __future__ import annotations

import argparse

NAME = "relabel"
HELP = "Another round: the tuned model answers the run's inputs again; a new dataset to train on."
ORDER = 45
PROTOCOLS = ("same", "answer", "chat", "plain")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="A trained run (in the workspace).")
    parser.add_argument("--round", default=None, metavar="K",
                        help="The round to make (default: the next one; nothing is done "
                             "when the dataset is round K already).")
    parser.add_argument("--protocol", default="same", metavar="{same,answer,chat,plain}",
                        help="How the tuned model is asked for labels: same = the protocol "
                             "round 1 chose from the base model's evidence (default); answer "
                             "= the form the tuned model answers in (as evaluation asks it).")
    parser.add_argument("--precision", default="auto",
                        help="Precision of the tuned model (as selfguide eval: auto, bf16, "
                             "fp32, 8bit, 4bit).")


def round_arg(value: str | None) -> int | None:
    """``--round K`` as a number (2 or more), or ``ConfigError``."""
    from selfguide.errors import ConfigError

    if value is None:
        return None
    if not str(value).strip().isdigit() or int(value) < 2:
        raise ConfigError(f"--round {value!r}: give the round to make, 2 or more.",
                          hint="Round 1 is synthesis; leave --round out for the next round.")
    return int(value)


def check_method(run) -> object:
    """The run's method, refused (``ConfigError``) when it has no relabel round."""
    from selfguide import methods
    from selfguide.errors import ConfigError

    method = methods.for_run(run)
    if method.relabel is None:
        ready = [m.title for m in methods.all_methods() if m.relabel is not None]
        raise ConfigError(f"Run {run.name!r} was made with {method.title}, which has no "
                          "relabel round.",
                          hint="Another round re-answers the inputs of a "
                               f"{' or '.join(ready) or 'capable'} run with its tuned model.")
    return method


def run(args: argparse.Namespace) -> int:
    from selfguide import jobs
    from selfguide.runs.rundir import RunDir

    target = round_arg(args.round)
    if args.protocol not in PROTOCOLS:
        from selfguide.errors import ConfigError

        raise ConfigError(f"--protocol {args.protocol!r} is not one of "
                          f"{', '.join(PROTOCOLS)}.")
    run_dir = RunDir.named(args.run, must_exist=True)
    method = check_method(run_dir)
    jobs.check_inputs_idle(run_dir.path, "relabel")
    run_dir.check_inputs("relabel")  # a damaged file fails here, before anything changes
    plan = method.relabel(run_dir.path, target=target, dry_run=True)  # refusals: no job
    if plan["plan"] is None:
        print(f"run {args.run}: the dataset is round {target} already; nothing to do.")
        return 0
    print(f"run {args.run}: round {plan['plan']}, {plan['inputs']} inputs answered again by "
          "the tuned model", flush=True)
    with jobs.worker(run_dir.path, "relabel", manifest=True) as events:
        report = method.relabel(run_dir.path, target=target, events=events,
                                precision=args.precision, protocol=args.protocol)
        events.record(kept=report.get("kept"), round=(report.get("round") or {}).get("round"))
    print(method.format_report(report))
    rnd = (report.get("round") or {}).get("round")
    if rnd:
        print(f"round {rnd} dataset: {run_dir.records_file('train')}\nnext: selfguide train "
              f"--run {args.run}, then selfguide eval --run {args.run}")
    return 0
