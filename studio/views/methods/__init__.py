"""Each synthesis method's parts of the studio, found through the method registry.

What it does: :func:`parts` returns the module a method names in ``Method.studio`` (its
settings form, job command line, pre-start check, live preview, ready message and Filter
view), or this module's generic parts for a method that names none, so the Synthesize and
Filter pages dispatch through the registry and never name a method.

A method's studio module may define any of ``settings_form(run, stage)``,
``job_argv(run, settings, model, overwrite)``, ``before_start(run_dir) -> bool``,
``preview(run_dir)``, ``ready_lines(run_dir, n)`` and ``filter_view(run_dir)``; what it
leaves out comes from here.

What it does not do: generate or filter anything (the jobs and the library do).
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType, SimpleNamespace
from typing import Any

import pandas as pd
import streamlit as st

from selfguide import methods
from selfguide.errors import SelfGuideError
from selfguide.runs.rundir import RunDir
from selfguide.settings import cli as cliargs
from selfguide.settings.fields import ModelConfig
from studio.app import state, widgets

HOOKS = ("settings_form", "job_argv", "before_start", "preview", "ready_lines", "filter_view")


@dataclasses.dataclass
class Settings:
    """The method's validated configs: ``full`` ones go on the command line field by field
    (the command starts from a preset), the others by their changed fields."""

    full: tuple = ()
    configs: tuple = ()
    options: dict = dataclasses.field(default_factory=dict)  # plain --name value options


def parts(method: methods.Method) -> SimpleNamespace:
    """The method's studio hooks: its own module's where it defines them, else generic."""
    own: ModuleType | None = importlib.import_module(method.studio) if method.studio else None
    generic = {name: globals()[f"generic_{name}"] for name in HOOKS}
    found = {name: getattr(own, name, None) or generic[name] for name in HOOKS}
    found = {name: (fn if getattr(own, name, None) else _bind(fn, method))
             for name, fn in found.items()}
    return SimpleNamespace(method=method, **found)


def _bind(fn, method: methods.Method):
    def call(*args: Any, **kwargs: Any) -> Any:
        return fn(method, *args, **kwargs)

    return call


# --------------------------------------------------------------------------- generic parts

def generic_settings_form(method: methods.Method, run: str, stage: str) -> Settings | None:
    """Every field of the method's synthesis config, as the CLI offers them."""
    values = widgets.config_form(method.synthesis_config, f"synth.{method.name}", columns=3)
    cfg = widgets.build_config(method.synthesis_config, values)
    return None if cfg is None else Settings(configs=(cfg,))


def generic_job_argv(method: methods.Method, run: str, settings: Settings,
                     model: ModelConfig, overwrite: bool) -> list[str]:
    """``synthesize --method NAME`` with the changed settings (the CLI dispatches)."""
    return cliargs.job_argv("synthesize", run=run, full=settings.full,
                            configs=(*settings.configs, model),
                            flags=["--method", method.name])


def generic_before_start(method: methods.Method, run_dir: RunDir) -> bool:
    return True


def generic_preview(method: methods.Method, run_dir: RunDir) -> None:
    st.caption("Rows appear on the Filter page when the job ends.")


def generic_ready_lines(method: methods.Method, run_dir: RunDir,
                        n: int) -> list[tuple[str, str]]:
    report = run_dir.read_report() or {}
    train = report.get("train")
    kept = f"; {train} of them pass the filters and are the training examples now" \
        if train is not None else ""
    lines = [("success", f"{n} candidates are ready to filter{kept}. Review or change the "
                         "filters on the Filter page.")]
    if report.get("warning"):
        lines.append(("warning", str(report["warning"])))
    return lines


def generic_filter_view(method: methods.Method, run_dir: RunDir) -> None:
    """The candidates with their decision and reason, the filters as a form, and Save."""
    try:
        df = method.load_candidates(run_dir)
        saved = method.saved_filters(run_dir)
    except SelfGuideError as exc:
        widgets.show_error(exc)
        return
    if df is None or not len(df):
        st.info(f"No candidates yet. Run **Synthesize** ({method.title}) first.")
        return
    values = widgets.config_form(method.filter_config, f"filter.{method.name}", columns=3,
                                 base=saved)
    cfg = widgets.build_config(method.filter_config, values)
    kept = int(pd.Series(df["kept"]).sum()) if "kept" in df else 0
    c = st.columns(3)
    c[0].metric("Candidates", len(df))
    c[1].metric("Kept", kept)
    c[2].metric("Dropped", len(df) - kept)
    st.dataframe(df, hide_index=True, width="stretch", height=360)
    if st.button("Save dataset", type="primary", icon=":material/save:",
                 disabled=cfg is None, key=state.widget_key("filter", f"{method.name}.save")):
        try:
            rep = method.refilter(run_dir, cfg)
            state.flash("success", f"Saved {rep.get('kept', '?')} training rows.")
            st.rerun()
        except SelfGuideError as exc:
            widgets.show_error(exc)
