"""``python -m selfguide``: the same entry point as the ``selfguide`` console script."""

from selfguide.cli import main

if __name__ == "__main__":
    from selfguide.jobs import run_as_job  # records the exit of jobs started by jobs.start

    raise SystemExit(run_as_job(main))
