"""The synthesis methods: one registry that the CLI and the studio dispatch through.

What it does: a method (SELF-GUIDE, Self-Instruct, ...) is one folder
``selfguide/methods/<name>/`` whose ``__init__`` builds a :class:`Method` and calls
:func:`register`. :func:`get` finds a method by the name runs record in ``config.json``
(``"method"``), :func:`for_run` by a run's folder, :func:`names` lists them. Method folders
are discovered (as the CLI discovers its commands), and so are plugin modules named in
``$SELFGUIDE_METHODS`` (comma-separated importable modules) or in the ``selfguide.methods``
entry-point group, so a third method is one new folder: nothing here or in the callers names
it. The CLI, the jobs, the cards and the studio read everything method-specific (titles,
stages, progress words, card tags, the studio's form and Filter view) from :class:`Method`.

Adding a method ``foo``: a folder ``selfguide/methods/foo/`` with ``config.py`` (its
synthesis and filter dataclasses, help texts on every field), its prompts, filters and
pipeline, a table that writes ``candidates.parquet`` with :data:`candidates.COLUMNS` first
and the records through :func:`selfguide.runs.dataset.write_dataset` (or ``records_file``), and
an ``__init__.py`` that calls ``register(Method(name="foo", ...))``; a CLI command module
named by ``Method.command`` if it needs options of its own. ``selfguide filter``/``export``,
``synthesize --method foo`` and the Filter page then find it. Shared by the methods:
``candidates`` (the table's columns, repairs), ``checks`` (text checks) and ``context``
(:class:`~selfguide.methods.context.StageContext`: the model and listeners a method's
stages are handed).

What it does not do: generate, filter or write anything itself (the callables on
:class:`Method` do), or import a method before it is asked for.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selfguide.errors import ConfigError, SelfGuideError
from selfguide.runs.rundir import as_run

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from selfguide.runs.rundir import RunDir


@dataclass(frozen=True)
class Method:
    """One synthesis method and the operations every caller needs from it.

    Attributes:
        name: The name in ``config.json`` ``"method"`` and ``synthesize --method``.
        title: How people call it ("SELF-GUIDE").
        stage: Its stage/job name in the manifest (``jobs/<stage>/``).
        command: The CLI command module that runs it (``selfguide.commands.<command>``, or a
            dotted module path of a plugin's own with ``run(args)``).
        synthesis_config: The frozen dataclass of its generation settings.
        filter_config: The frozen dataclass of its filter settings.
        frozen_filters: Filter fields that cannot change after generation (they shaped what
            was generated); ``refilter`` refuses a change and the Filter page shows them
            read-only.
        filter_order: Its filters in the order a drop reason is assigned (the funnel).
        presets: Named settings ``{name: {"synthesis": {...}, "filters": {...}}}``.
        run: Runs (or resumes) the method; the signature is the method's own.
        refilter: ``(run_dir, filter_config) -> report``: re-apply filters, rewrite the
            dataset, no model.
        load_candidates: ``(run_dir) -> DataFrame``: the run's candidates table.
        load_settings: ``(run_dir) -> (synthesis config, filter config)`` of a run.
        format_report: ``(report) -> str``: the dataset report as text for the CLI.
        summary: One line for a method picker ("SELF-GUIDE (Zhao et al. 2024): ...").
        subtitle: The Synthesize page's subtitle while this method is selected.
        citation: How a card names it ("SELF-GUIDE (Zhao et al., 2024)").
        tag: Its tag on model and dataset cards ("self-guide").
        order: Where it stands in lists (the lowest is the default method).
        needs_task: Whether it synthesizes from the run's task (the Synthesize page asks
            for one first).
        job_stages: Its job's stages in order, as its progress events name them, and the
            words the studio shows for each (``{"inputs": "writing new inputs", ...}``).
        studio: The module with its studio parts (settings form, job command line, live
            preview, ready message, Filter view); ``None``: the studio's generic parts.
        relabel: ``(run_dir, generator=None, *, target=None, events=..., ...) -> report``:
            another round, the run's tuned model answering its inputs again
            (``selfguide relabel``; ``dry_run=True`` checks and returns ``{"plan": round or
            None, "inputs": n}``); ``None``: the method has no such round.
    """

    name: str
    title: str
    stage: str
    command: str
    synthesis_config: type
    filter_config: type
    run: Callable[..., dict]
    refilter: Callable[[Any, Any], dict]
    load_candidates: Callable[[Any], pd.DataFrame]
    load_settings: Callable[[Any], tuple[Any, Any]]
    format_report: Callable[[dict], str]
    frozen_filters: tuple[str, ...] = ()
    filter_order: tuple[str, ...] = ()
    presets: Mapping[str, dict] = field(default_factory=dict)
    summary: str = ""
    subtitle: str = ""
    citation: str = ""
    tag: str = ""
    order: int = 100
    needs_task: bool = True
    job_stages: Mapping[str, str] = field(default_factory=dict)
    studio: str | None = None
    relabel: Callable[..., dict] | None = None

    def saved_filters(self, run_dir: str | os.PathLike | RunDir) -> Any:
        """The filter config the run was synthesized or last filtered with."""
        return self.load_settings(as_run(run_dir))[1]


_REGISTRY: dict[str, Method] = {}
_discovered = False


def lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name`` as a callable that imports its module on first call (so that
    registering a method imports nothing heavy)."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"Calls {module}.{name} (imported on first use)."
    return call


def register(method: Method) -> Method:
    """Add ``method`` to the registry (a method folder's ``__init__`` calls this)."""
    if method.name in _REGISTRY and _REGISTRY[method.name] is not method:
        raise SelfGuideError(f"Two synthesis methods are named {method.name!r}.")
    _REGISTRY[method.name] = method
    return method


PLUGINS_ENV = "SELFGUIDE_METHODS"


def _plugin_modules() -> list[str]:
    """Modules named in ``$SELFGUIDE_METHODS`` and the ``selfguide.methods`` entry points."""
    from importlib.metadata import entry_points

    named = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    return named + [ep.value.split(":")[0] for ep in entry_points(group="selfguide.methods")]


def _discover() -> None:
    """Import every method folder and plugin module once (each registers itself)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    for module in _plugin_modules():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"The synthesis method plugin {module!r} cannot be imported "
                              f"({exc}).", hint=f"Fix or remove it from ${PLUGINS_ENV} or "
                                                "uninstall the package that declares it.") from exc


def all_methods() -> tuple[Method, ...]:
    """Every registered method, the default first."""
    _discover()
    return tuple(sorted(_REGISTRY.values(), key=lambda m: (m.order, m.name)))


def names() -> tuple[str, ...]:
    """The registered method names, the default first."""
    return tuple(m.name for m in all_methods())


def default() -> Method:
    """The method a run uses when it names none (the lowest ``order``)."""
    return all_methods()[0]


def stages() -> tuple[str, ...]:
    """The job stages of every method (``synthesize``, ...): the stages that write a
    run's candidates and dataset."""
    return tuple(m.stage for m in all_methods())


def by_stage(stage: str) -> Method | None:
    """The method whose job runs as ``stage``, if any."""
    return next((m for m in all_methods() if m.stage == stage), None)


def get(name: str) -> Method:
    """The method called ``name``; ``SelfGuideError`` naming the known ones otherwise."""
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"Unknown synthesis method {name!r}; known methods: "
                             f"{', '.join(names())}.",
                             hint="Check the run's config.json \"method\" or the --method "
                                  "option.") from None


def for_run(run_dir: str | os.PathLike | RunDir) -> Method:
    """The method that made (or will make) the run (``RunDir.method``; the default method
    when the run names none)."""
    return get(as_run(run_dir).method or default().name)


__all__ = ["Method", "all_methods", "by_stage", "default", "for_run", "get", "names",
           "register", "stages"]
