"""Command lines for stage jobs, built from config dataclasses.

What it does: turns a frozen config (``selfguide.settings.*``, ``ModelConfig``) back into the
``--field value`` options that :func:`selfguide.settings.fields.add_dataclass_args` parses, reading
the same field metadata (``cli=False`` fields are left out), and assembles a whole job
command line (command, positionals, ``--run``, options, configs, flags). The studio starts
every job with such an argv, so a job started from a page runs the same code path with the
same settings as the CLI.

What it does not do: parse arguments (``selfguide.cli``) or start processes
(``selfguide.jobs``).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from typing import Any


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _value_argv(opt: str, value: Any, *, is_bool: bool = False) -> list[str]:
    if is_bool or isinstance(value, bool):
        return [opt, "true" if value else "false"]
    if isinstance(value, (tuple, list)):
        return [opt, ",".join(str(v) for v in value)]
    return [opt, str(value)]


def config_argv(obj: Any, *, every: bool = False) -> list[str]:
    """``--field value`` options for the CLI fields of ``obj`` that differ from the default
    (all of them with ``every``, for commands that start from a preset, not the defaults).

    Tuple values are joined with commas, as the CLI splits them; ``None`` values are left
    out (the option's default applies).
    """
    out: list[str] = []
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if not f.metadata.get("cli", True):
            continue
        value = getattr(obj, f.name)
        if value is None or (value == _default_of(f) and not every):
            continue
        out += _value_argv(_option(f.name), value, is_bool=hints.get(f.name) is bool)
    return out


def job_argv(command: str, *positional: str, run: str | None = None,
             options: Mapping[str, Any] | None = None, full: Iterable[Any] = (),
             configs: Iterable[Any] = (), flags: Iterable[str] = ()) -> list[str]:
    """The argv of ``python -m selfguide``: ``command``, ``positional``, ``--run run``, the
    plain ``options`` (``{"out": path}`` -> ``--out path``), every field of the ``full``
    configs, the changed fields of the other ``configs``, then bare ``flags``."""
    argv = [command, *(str(p) for p in positional)]
    if run is not None:
        argv += ["--run", str(run)]
    for name, value in (options or {}).items():
        argv += _value_argv(_option(name), value)
    for cfg in full:
        argv += config_argv(cfg, every=True)
    for cfg in configs:
        argv += config_argv(cfg)
    return argv + [str(f) for f in flags]


def config_from_argv(cls: type, argv: Iterable[str], *,
                     presets: Mapping[str, dict] | None = None) -> Any:
    """The ``cls`` config a job argv carries: the inverse of :func:`config_argv`.

    With ``presets`` (the command's ``--preset`` choices), a ``--preset NAME`` in the argv
    is applied first, as the command does. Options of other configs and positionals are
    ignored; fields the argv does not name keep their defaults (what the job runs with).
    Raises ``ConfigError`` on a value the config rejects.
    """
    import argparse

    from selfguide.settings import fields as sgconfig
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    sgconfig.add_dataclass_args(parser, cls)
    parser.add_argument("--preset", default=None)
    args, _rest = parser.parse_known_args([str(a) for a in argv])
    base = dict((presets or {}).get(args.preset or "", {}))
    base.update(sgconfig.overrides_from_args(args, cls))
    return sgconfig.from_dict(cls, base)


__all__ = ["config_argv", "config_from_argv", "job_argv"]
