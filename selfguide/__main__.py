"""``python -m selfguide``: the same entry point as the ``selfguide`` console script."""

from selfguide.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
