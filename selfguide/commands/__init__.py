"""CLI subcommands, one module each (see :mod:`selfguide.cli`)."""
