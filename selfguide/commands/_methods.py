"""Options of several synthesis methods on one command line (``filter``, ``synthesize``).

What it does: adds the ``--field`` options of every registered method's config classes to
a parser (a field two methods share, such as ``--seed``, is one option), and tells which of
the options given do not belong to the method a run uses, so a typo or a SELF-GUIDE-only
option on a Self-Instruct run is an error instead of being ignored.

What it does not do: build configs or run anything (the commands do). Not a command itself
(the leading underscore keeps it out of command discovery).
"""

from __future__ import annotations

import argparse
import dataclasses

from selfguide.errors import ConfigError


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)}


def add_config_args(parser: argparse.ArgumentParser, classes: list[type], *,
                    exclude: tuple[str, ...] = ()) -> None:
    """``--field`` options of ``classes``, each field once (the first class that has it)."""
    from selfguide.settings.fields import add_dataclass_args

    taken = set(exclude)
    for cls in classes:
        add_dataclass_args(parser, cls, exclude=tuple(taken))
        taken |= _names(cls)


def reject_foreign(args: argparse.Namespace, offered: list[type], own: list[type],
                   method_title: str) -> None:
    """``ConfigError`` if an option of ``offered`` that is not a field of ``own`` was given."""
    mine = set().union(*(_names(c) for c in own)) if own else set()
    given = sorted(n for c in offered for n in _names(c)
                   if n not in mine and getattr(args, n, None) is not None)
    if given:
        raise ConfigError(f"{method_title} has no setting "
                          + ", ".join("--" + n.replace("_", "-") for n in dict.fromkeys(given))
                          + ".", hint="See 'selfguide COMMAND --help' for each method's "
                                      "options, grouped by config.")
