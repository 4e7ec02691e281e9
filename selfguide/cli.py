"""The ``selfguide`` command line: one subcommand per stage, discovered from
``selfguide/commands/*.py``.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int`` and imports nothing heavy at module level, so ``selfguide --help``
is instant. ``SelfGuideError`` is printed as a one-paragraph message (no traceback) with
exit status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from selfguide import __version__
from selfguide.errors import SelfGuideError


def build_parser() -> argparse.ArgumentParser:
    import selfguide.commands as pkg

    parser = argparse.ArgumentParser(
        prog="selfguide",
        description="Turn a language model into a task expert with its own synthetic data.",
    )
    parser.add_argument("--version", action="version", version=f"selfguide {__version__}")
    parser.add_argument("--workspace", default=None,
                        help="Workspace directory (default: $SELFGUIDE_WORKSPACE or ./workspace).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    mods = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"selfguide.commands.{info.name}"))
    for mod in sorted(mods, key=lambda m: getattr(m, "ORDER", 50)):
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)
    return parser


def restore_sigint() -> None:
    """Make Ctrl-C raise ``KeyboardInterrupt`` again even if this process inherited SIGINT
    as ignored (a command started with ``&`` from a script, or by a launcher that ignores
    it): Python keeps an inherited SIG_IGN, and ``selfguide run`` then ignored SIGINT for
    the whole synthesis."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    restore_sigint()
    parser = build_parser()
    if any("\x00" in a for a in (sys.argv[1:] if argv is None else argv)):
        # A real command line cannot carry NUL; in-process callers can, and every path
        # function would raise ValueError on it.
        print("error: an argument contains a NUL byte.", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    if args.workspace:
        import os

        os.environ["SELFGUIDE_WORKSPACE"] = args.workspace
    try:
        return int(args.func(args) or 0)
    except SelfGuideError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
