"""Data for the Filter page: which method made the run, the cached candidates table,
filters re-applied on it, the frames behind its charts, and the manual overrides file.

What it does: dispatches through the method registry (``selfguide.methods``): the run's
method, its saved filter config, the filter fields frozen after generation, its filter
order, and saving (the method's ``refilter``, what ``selfguide filter`` runs). For a
SELF-GUIDE run it loads ``candidates.parquet`` once per file version (with the
near-duplicate scores, the only expensive part, computed once), calls
``selfguide.methods.selfguide.filters.apply`` with the page's ``FilterConfig`` and the
user's overrides, and shapes the result into small DataFrames (drop-reason counts, kept per
label, lengths, near-duplicate pairs, the editable table). Reads and writes
``overrides.json`` atomically (``RunDir``). Self-Instruct's own views live in
:mod:`studio.views.filter_selfinstruct`.

What it does not do: decide what passes a filter (each method's ``filters``) or build the
dataset (the method's ``refilter``, with the same settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from selfguide import methods
from selfguide.methods import candidates
from selfguide.methods.selfguide import filters, strategies
from selfguide.methods.selfguide.choice import LabelChoice
from selfguide.methods.selfguide.config import FilterConfig
from selfguide.runs.rundir import RunDir
from selfguide.task.spec import TaskSpec

DECISIONS = ("auto", "keep", "drop")
ORDER = filters.ORDER  # SELF-GUIDE filters, in the order a drop reason is assigned
TABLE_LIMIT = 1000
TABLE_COLS = ("decision", "kept", "drop_reason", "origin", "label", "vote_share",
              "agreement", "structure_score", "input", "output", "passage", "round",
              "target_label", "id")


def _stamp(path: Path) -> tuple[float, int]:
    s = path.stat()
    return s.st_mtime, s.st_size


# --------------------------------------------------------------------------- the method

def method_of(run_dir: Path) -> methods.Method:
    """The method that made the run (its ``config.json``)."""
    return methods.for_run(run_dir)


def saved_config(run_dir: Path) -> Any:
    """The run's saved filter config, as its method's config class."""
    return method_of(run_dir).saved_filters(run_dir)


def frozen_fields(run_dir: Path) -> tuple[str, ...]:
    """Filter fields the run's method froze at generation (shown read-only)."""
    return method_of(run_dir).frozen_filters


def filter_order(run_dir: Path) -> tuple[str, ...]:
    """The run's method's filters, in the order a drop reason is assigned."""
    return tuple(method_of(run_dir).filter_order)


# --------------------------------------------------------------------------- SELF-GUIDE table

@st.cache_data(max_entries=4, show_spinner="Reading the candidates…")
def _load(run_dir: str, stamp: tuple, task_stamp: tuple) -> pd.DataFrame:
    d = Path(run_dir)
    df = method_of(d).load_candidates(d)
    return filters.ensure_near_duplicate_scores(df, load_task(d))


def load_candidates(run_dir: Path) -> pd.DataFrame | None:
    """The run's candidates table (cached per file version), or None before synthesis."""
    run = RunDir(run_dir)
    if not run.candidates_file.is_file():
        return None
    tpath = run.task_file
    return _load(str(run_dir), _stamp(run.candidates_file),
                 _stamp(tpath) if tpath.is_file() else ())


def load_task(run_dir: Path) -> TaskSpec | None:
    return RunDir(run_dir).read_task()


def saved_filter_config(run_dir: Path) -> dict:
    """The filter settings the run was synthesized or last filtered with."""
    return RunDir(run_dir).saved_filters()


def saved_matches(run_dir: Path, cfg: FilterConfig) -> bool:
    """Were the run's saved dataset's filters exactly ``cfg``?"""
    from selfguide.errors import ConfigError
    from selfguide.settings.fields import from_dict

    try:
        return from_dict(FilterConfig, saved_filter_config(run_dir)) == cfg
    except ConfigError:
        return False


# --------------------------------------------------------------------------- overrides

def read_overrides(run_dir: Path) -> dict[str, bool]:
    return candidates.read_overrides(run_dir)


def write_overrides(run_dir: Path, overrides: dict[str, bool | None]) -> dict[str, bool]:
    """Save ``{id: keep}``; ``None`` removes a decision (back to the filters)."""
    return candidates.write_overrides(run_dir, overrides)


def decision_of(override: bool | None) -> str:
    return "auto" if override is None else ("keep" if override else "drop")


def decisions_changed(view: pd.DataFrame, edited: pd.DataFrame) -> dict[str, bool | None]:
    """``{id: keep|None}`` for rows whose decision the user changed in the editor."""
    out: dict[str, bool | None] = {}
    if view.empty or "decision" not in edited.columns:
        return out
    for ident, before, after in zip(view["id"], view["decision"], edited["decision"]):
        if before != after:
            out[str(ident)] = None if after in (None, "auto") else after == "keep"
    return out


# --------------------------------------------------------------------------- apply + views

def apply(cands: pd.DataFrame, cfg: FilterConfig, task: TaskSpec | None,
          overrides: dict[str, bool]) -> pd.DataFrame:
    """The candidates annotated under ``cfg`` (pure; never drops rows)."""
    return filters.apply(cands, cfg, task, overrides=overrides)


def resolve(run_dir: Path, cands: pd.DataFrame, cfg: FilterConfig, task: TaskSpec | None
            ) -> tuple[FilterConfig, LabelChoice | None]:
    """``cfg`` with label strategy ``auto`` resolved from the run's labelling evidence, and
    the choice in plain words (what ``selfguide filter`` does too)."""
    from selfguide.methods.selfguide import choice
    if task is None:
        return cfg, None
    return choice.resolve_filters(cands, task, cfg, RunDir(run_dir).read_labelling())


def inert_controls(eff: FilterConfig, task: TaskSpec | None) -> dict[str, str]:
    """``{field: why}`` for the filter settings that cannot change the result under the
    settings in effect (``eff``: label strategy ``auto`` already resolved), e.g. the
    self-consistency threshold when the labels do not come from the vote."""
    if task is None:
        return {}
    if not task.is_classification:
        why = "only classification tasks have labels."
        out = {f: why for f in ("label_strategy", "agree_source", "calibration_margin",
                                "balance", "dominant_label_share")}
        out["min_frequency"] = ("generation answers rarely match word for word: the "
                                "agreement of the consensus answer with the other samples "
                                "(min agreement) decides instead.")
        return out
    strat = strategies.in_effect(eff.label_strategy)
    src = strategies.source(strat, eff.agree_source)
    out = {"drop_copies": "a classification answer is a label, never a copy of the input.",
           "min_agreement": "classification answers are labels: the vote share (min "
                            "frequency) measures their agreement.",
           "relation_margin": "a label has no length or overlap relation to its input.",
           "drop_repetitive": "a label cannot loop on a phrase."}
    if not strategies.uses_vote(strat, eff.agree_source):
        out["min_frequency"] = (f"with label strategy '{strat}' the labels come from {src}, "
                                "not from the vote, so no vote-share threshold applies.")
    if not strategies.uses_calibration(strat, eff.agree_source):
        out["calibration_margin"] = (f"used only by the 'calibrated' strategy (or 'agree' "
                                     f"with agree source calibrated); now: '{strat}'.")
    if strat != "agree":
        out["agree_source"] = f"used only by the 'agree' strategy; now: '{strat}'."
    if not strategies.balances(strat):
        out["balance"] = (f"with label strategy '{strat}' the labels are the model's own "
                          "answers and keep their shares: balancing them would teach a "
                          "different answer than the model gives.")
    return out


def topup_message(topup: list[dict] | None, strategy: str | None = None) -> str:
    """What the top-up rounds of synthesis did, in words ("" for none); ``strategy``: the
    label strategy in effect now (``own`` labels are never balanced)."""
    if not topup:
        return ""
    asked = sorted({lab for t in topup for lab in t.get("asked_for", {})})
    before = {lab: topup[0]["asked_for"].get(lab) for lab in asked}
    after = topup[-1].get("after", {})
    counts = ", ".join(f"{lab} {before.get(lab) if before.get(lab) is not None else '?'} → "
                       f"{after.get(lab, '?')}" for lab in asked)
    rounds = len(topup)
    return (f"Too few inputs were labelled {', '.join(asked)} for a balanced dataset, so "
            f"synthesis added {rounds} round{'s' if rounds != 1 else ''} of prompts asking "
            f"only for {'it' if len(asked) == 1 else 'them'} (examples past the filters: "
            f"{counts}). " + ("The labels in use now are the model's own answers, which are "
                              "not balanced." if strategy and not strategies.balances(strategy)
                              else
                              "Balancing cuts every label to the rarest one's count."))


def choice_message(choice: LabelChoice | None) -> str:
    """One paragraph: how the labels were made and how to change it."""
    if choice is None or not (choice.reason or choice.protocol_reason):
        return ""
    how = (" To choose yourself, set **Label strategy** in the filters (auto = this "
           "choice); the labelling protocol is a synthesis setting.")
    return f"**Labels:** {choice.message()}" + (how if choice.strategy else "")


def reason_counts(df: pd.DataFrame, order: tuple[str, ...] = ORDER) -> pd.DataFrame:
    """``reason, count, kind`` in filter order: how many rows each filter dropped."""
    rows = [{"reason": "kept", "count": int(df["kept"].sum()), "kind": "kept"}]
    for name in order:
        c = int((df["drop_reason"] == name).sum())
        if c:
            rows.append({"reason": name, "count": c, "kind": "dropped"})
    return pd.DataFrame(rows)


def origin_counts(df: pd.DataFrame) -> pd.DataFrame | None:
    """``origin, candidates, kept, held_out``: the user's own inputs against the generated
    ones (None when every row was generated)."""
    from selfguide.methods.selfguide.report import origin_counts as counts

    by = counts(df)
    if not by:
        return None
    return pd.DataFrame([{"origin": o, **c} for o, c in by.items()])


def label_counts(df: pd.DataFrame, task: TaskSpec | None) -> pd.DataFrame | None:
    """``label, kept`` for the chart (the report's count); None for a generation task."""
    if task is None or not task.is_classification:
        return None
    from selfguide.methods.selfguide.report import label_counts as counts

    by = counts(df, task) if "label" in df.columns else {}
    return pd.DataFrame({"label": list(task.labels),
                         "kept": [(by.get(lab) or {}).get("kept", 0) for lab in task.labels]})


def _words(v: Any) -> int:
    return len(str(v).split()) if isinstance(v, str) else 0


def lengths(df: pd.DataFrame) -> pd.DataFrame:
    """Word counts of inputs (and outputs), with kept/dropped, for the histograms."""
    status = df["kept"].map({True: "kept", False: "dropped"})
    parts = [pd.DataFrame({"field": "input", "words": df["input"].map(_words),
                           "status": status})]
    if "output" in df.columns:
        has = df["output"].map(lambda v: isinstance(v, str) and v != "")
        parts.append(pd.DataFrame({"field": "output", "words": df.loc[has, "output"]
                                   .map(_words), "status": status[has]}))
    return pd.concat(parts, ignore_index=True)


def near_duplicates(df: pd.DataFrame, task: TaskSpec | None, cfg: FilterConfig,
                    top: int = 100) -> pd.DataFrame:
    """The closest pairs: input, its nearest demo or earlier input, the ROUGE-L score."""
    if "nd_score" not in df.columns:
        return pd.DataFrame(columns=["input", "nearest", "score", "dropped"])
    by_id = dict(zip(df["id"].astype(str), df["input"]))
    demos = [d.input for d in task.demos] if task is not None else []

    def text_of(ref: Any) -> str:
        ref = str(ref or "")
        if ref.startswith("demo:"):
            i = int(ref.split(":", 1)[1])
            return f"[demo {i + 1}] " + (demos[i] if i < len(demos) else "")
        return by_id.get(ref, "")

    d = df[df["nd_score"].fillna(0) > 0].sort_values("nd_score", ascending=False).head(top)
    return pd.DataFrame({
        "input": d["input"].astype(str).tolist(),
        "nearest": [text_of(r) for r in d.get("nd_nearest", [""] * len(d))],
        "score": d["nd_score"].astype(float).round(3).tolist(),
        "dropped": (d["nd_score"] >= cfg.near_duplicate_threshold).tolist(),
    })


def reason_options(df: pd.DataFrame, order: tuple[str, ...] = ORDER) -> list[str]:
    present = set(df["drop_reason"])
    return ["kept", *[r for r in order if r in present]]


def _informative(df: pd.DataFrame, column: str) -> bool:
    """Agreement only for generation runs (it is empty otherwise); the structure score only
    when some input lacks part of the demos' structure."""
    if column == "agreement":
        return bool(df[column].notna().any())
    if column == "structure_score":
        return bool((df[column].fillna(1.0) < 1.0).any())
    if column == "origin":  # only when some rows are the user's own inputs (issue 36)
        return bool((df[column] == "given").any())
    if column == "passage":
        return bool(df[column].fillna("").astype(str).str.len().gt(0).any())
    return True


def table(df: pd.DataFrame, overrides: dict[str, bool], show: list[str],
          columns: tuple[str, ...] = TABLE_COLS) -> pd.DataFrame:
    """The editable candidates table (rows matching ``show``: 'kept' and/or reasons)."""
    d = df
    if show:
        mask = d["drop_reason"].isin([s for s in show if s != "kept"])
        if "kept" in show:
            mask |= d["kept"]
        d = d[mask]
    d = d.head(TABLE_LIMIT).copy()
    d["decision"] = [decision_of(overrides.get(str(i))) for i in d["id"]]
    cols = [c for c in columns if c in d.columns and _informative(df, c)]
    out = d[cols].reset_index(drop=True)
    for c in ("input", "output", "label", "drop_reason", "target_label", "id", "origin",
              "passage"):
        if c in out.columns:
            out[c] = out[c].map(lambda v: "" if v is None or (isinstance(v, float)
                                                            and pd.isna(v)) else str(v))
    return out


# --------------------------------------------------------------------------- diagnostics

def strategy_agreement(df: pd.DataFrame, task: TaskSpec | None) -> pd.DataFrame | None:
    """Per self-label strategy: its labels and how often they agree with the label each
    input was written for (the CLI funnel's "Label strategies" block)."""
    if task is None or not task.is_classification:
        return None
    from selfguide.methods.selfguide import report

    table = report.strategy_table(df, task)
    if not table:
        return None
    rows = [{"strategy": name,
             "labels": ", ".join(f"{lab} {n}" for lab, n in t["labels"].items()),
             "agrees with the asked-for label": "–" if t["target_agreement"] is None
             else f"{100 * t['target_agreement']:.0f}%",
             "by chance": "–" if t.get("agreement_chance") is None
             else f"{100 * t['agreement_chance']:.0f}%"}
            for name, t in table.items() if name != "target"]
    return pd.DataFrame(rows)


def diagnostics(df: pd.DataFrame, cfg: FilterConfig, task: TaskSpec | None
                ) -> list[tuple[str, str]]:
    """``(level, message)`` about a degenerate selection, recomputed as sliders move (the
    same checks ``dataset/report.json`` records when the dataset is saved)."""
    if task is None:
        return []
    from selfguide.methods.selfguide import report

    diags = report.diagnostics(df, task, cfg, report.strategy_table(df, task))
    return [(str(d.get("level", "warning")), str(d.get("message", ""))) for d in diags]


def save_dataset(run_dir: Path, cfg: Any) -> dict:
    """Re-apply ``cfg`` (the run's method's filter config) plus the overrides and write the
    dataset (``selfguide filter``'s code path; fast, so it runs in the page). Returns the
    dataset report."""
    return method_of(run_dir).refilter(run_dir, cfg)


def export_bytes(run_dir: Path, fmt: str) -> bytes:
    """Export the saved dataset (``selfguide export``) and return the file's bytes."""
    from selfguide.runs import dataset
    return dataset.export(run_dir, fmt).read_bytes()
