"""The Filter page's two views: SELF-GUIDE candidates (every filter live, charts, manual
keep/drop, save and downloads) and Self-Instruct rounds (instance filters live, pool
filters read-only), and the candidates editor they share.

What it does: draws the views from the cached candidates the filtering modules compute
(``studio.filtering`` for SELF-GUIDE, ``studio.si_filtering`` for Self-Instruct) and saves
manual decisions and datasets through them.

What it does not do: filter or write datasets itself (the filtering modules and the
library do), or regenerate anything.
"""

from __future__ import annotations

import json

import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.methods.selfguide.config import FilterConfig
from selfguide.methods.selfinstruct.config import SelfInstructFilterConfig
from selfguide.rundir import RunDir
from studio import charts, filtering, frame, si_filtering, state, widgets
from studio import jobs as sjobs

SLIDERS = {"length_k": (0.0, 10.0, 0.25), "near_duplicate_threshold": (0.05, 1.0, 0.05),
           "min_frequency": (0.0, 1.0, 0.05), "val_fraction": (0.0, 0.5, 0.05),
           "calibration_margin": (0.0, 5.0, 0.1), "dominant_label_share": (0.05, 1.0, 0.05),
           "low_vote_share": (0.0, 1.0, 0.05)}
ROUGE_COLUMN = {"score": st.column_config.ProgressColumn("ROUGE-L", min_value=0.0,
                                                         max_value=1.0, format="%.2f")}


def candidates_editor(rd: RunDir, df, overrides: dict, order: tuple, columns: tuple) -> None:
    """The candidates table, filterable by drop reason, with keep/drop overrides saved to
    overrides.json at once (the counts above follow on the next run)."""
    run = rd.name
    show = st.multiselect("Show rows", filtering.reason_options(df, order), default=[],
                          key=state.widget_key(f"filter.{run}", "show"),
                          placeholder="all rows — or pick 'kept' / drop reasons")
    view = filtering.table(df, overrides, show, columns)
    version = state.draft(f"filter.{run}.editor").get("v", 0)
    edited = st.data_editor(
        view, hide_index=True, width="stretch", height=380,
        key=state.widget_key(f"filter.{run}", f"table.{version}"),
        disabled=[c for c in view.columns if c != "decision"],
        column_config={
            "decision": st.column_config.SelectboxColumn(
                "decision", options=list(filtering.DECISIONS), required=True,
                help="auto: follow the filters · keep / drop: your decision wins"),
            "kept": st.column_config.CheckboxColumn("kept"),
            "vote_share": st.column_config.NumberColumn("vote share", format="%.2f")})
    changed = filtering.decisions_changed(view, edited)
    if changed:
        try:
            filtering.write_overrides(rd.path, {**overrides, **changed})
        except SelfGuideError as exc:
            widgets.show_error(exc)
        else:
            state.set_draft(f"filter.{run}.editor", {"v": version + 1})
            st.rerun()
    if len(view) >= filtering.TABLE_LIMIT:
        st.caption(f"Showing the first {filtering.TABLE_LIMIT} rows; narrow with the filter.")


# --------------------------------------------------------------------------- Self-Instruct

def _selfinstruct_filters(run: str, saved: SelfInstructFilterConfig,
                          frozen: tuple[str, ...]):
    st.subheader("Filters")
    values = widgets.config_form(SelfInstructFilterConfig, f"sifilter.{run}", base=saved,
                                 exclude=frozen, columns=1)
    fcfg = widgets.build_config(SelfInstructFilterConfig,
                                {**{k: getattr(saved, k) for k in frozen},
                                 **values})
    with st.expander("Instruction (pool) filters — fixed for this run"):
        st.caption("They decided which instructions joined the pool, and so what was "
                   "generated next. Set them on the Synthesize page for a new run.")
        for k in frozen:
            st.text(f"{k}: {getattr(saved, k)}")
    return fcfg


def _selfinstruct_results(rd: RunDir, df, overrides: dict, fcfg) -> None:
    c = st.columns(4)
    c[0].metric("Candidates", len(df))
    c[1].metric("Kept", int(df["kept"].sum()))
    c[2].metric("Instructions", int(df["instruction_id"].nunique()))
    c[3].metric("Manual overrides", len(overrides))
    st.altair_chart(charts.funnel(filtering.reason_counts(df, filtering.filter_order(rd.path)), coloured=False),
                    width="stretch")
    st.markdown("**Nearest pool instruction (ROUGE-L)**")
    st.dataframe(si_filtering.nearest_instructions(df), hide_index=True, width="stretch",
                 height=260, column_config=ROUGE_COLUMN)
    st.subheader("Candidates")
    candidates_editor(rd, df, overrides, filtering.filter_order(rd.path),
                      si_filtering.TABLE_COLS)
    if st.button("Save dataset", type="primary", icon=":material/save:",
                 disabled=not df["kept"].any()):
        try:
            rep = filtering.save_dataset(rd.path, fcfg)
            state.flash("success", f"Saved {rep.get('kept', '?')} training rows.")
            st.rerun()
        except SelfGuideError as exc:
            widgets.show_error(exc)


def selfinstruct_view(rd: RunDir) -> None:
    """A Self-Instruct run: instance filters live; pool filters read-only."""
    try:
        rounds = si_filtering.load_rounds(rd.path)
        saved = filtering.saved_config(rd.path)
        frozen = filtering.frozen_fields(rd.path)
    except SelfGuideError as exc:
        widgets.show_error(exc)
        return
    if not rounds:
        st.info("No Self-Instruct rounds yet. Run **Synthesize** (method Self-Instruct) first.")
        return
    left, right = st.columns([1, 3], gap="large")
    with left:
        fcfg = _selfinstruct_filters(rd.name, saved, frozen)
    if fcfg is None:
        return
    overrides = filtering.read_overrides(rd.path)
    df = si_filtering.apply(rounds, fcfg, overrides)
    with right:
        _selfinstruct_results(rd, df, overrides, fcfg)


# --------------------------------------------------------------------------- SELF-GUIDE

def _headline(df, overrides: dict, eff, choice: dict, task) -> None:
    n, kept = len(df), int(df["kept"].sum())
    c = st.columns(4)
    c[0].metric("Candidates", n)
    c[1].metric("Kept", kept, help="Rows that pass every filter (or that you kept by hand).")
    c[2].metric("Dropped", n - kept)
    c[3].metric("Manual overrides", len(overrides))
    if filtering.choice_message(choice):
        (st.warning if choice.get("beats_chance") is False else st.info)(
            filtering.choice_message(choice))
    for level, msg in filtering.diagnostics(df, eff, task):
        {"error": st.error, "warning": st.warning}.get(level, st.info)(msg)


def _chart_tabs(df, cfg: FilterConfig, task) -> None:
    tabs = st.tabs(["Funnel", "Labels", "Lengths", "Vote share", "Near-duplicates"])
    with tabs[0]:
        st.altair_chart(charts.funnel(filtering.reason_counts(df)), width="stretch")
        st.caption("Each dropped row is counted once, at the first filter it fails "
                   "(filters run top to bottom).")
    with tabs[1]:
        labels = filtering.label_counts(df, task)
        if labels is None:
            st.caption("Generation task: no labels.")
        else:
            st.altair_chart(charts.labels(labels), width="stretch")
    with tabs[2]:
        st.altair_chart(charts.lengths(filtering.lengths(df)), width="content")
    with tabs[3]:
        if "vote_share" in df.columns:
            st.altair_chart(charts.vote_shares(df), width="stretch")
            st.caption(f"min_frequency = {cfg.min_frequency:.2f}: answers with a lower share "
                       "are dropped (self-consistency).")
        else:
            st.caption("No answers yet (stage 2 has not run).")
    with tabs[4]:
        nd = filtering.near_duplicates(df, task, cfg)
        st.caption(f"Inputs whose ROUGE-L to a demo or an earlier input is ≥ "
                   f"{cfg.near_duplicate_threshold:.2f} are dropped. Closest pairs first.")
        st.dataframe(nd, hide_index=True, width="stretch", height=300,
                     column_config=ROUGE_COLUMN)


def _save(rd: RunDir, cfg: FilterConfig, kept: int) -> None:
    st.subheader("Save")
    busy = sjobs.is_active(sjobs.status(rd.name, "synthesize"))
    c1, c2 = st.columns([1, 2])
    if c1.button("Save dataset", type="primary", icon=":material/save:",
                 disabled=kept == 0 or busy):
        try:
            with st.spinner("Writing the dataset…"):
                rep = filtering.save_dataset(rd.path, cfg)
            state.flash("success", f"Saved {rep.get('train', rep.get('kept'))} training rows"
                        f" ({rep.get('val', 0)} held back for validation).")
            st.rerun()
        except SelfGuideError as exc:
            widgets.show_error(exc)
    c2.caption("Writes dataset/train.jsonl (and val.jsonl) with these settings and your "
               "overrides, plus dataset/report.json with the diagnostics — the same as "
               "`selfguide filter`." + (" Wait for the synthesis job to finish." if busy
                                        else ""))


def _downloads(rd: RunDir, df, cfg: FilterConfig) -> None:
    run, train = rd.name, rd.records_file("train")
    report = rd.read_report() or {}
    if not filtering.saved_matches(rd.path, cfg):
        st.caption("The saved dataset was built with other settings than those shown; "
                   "press Save dataset to rebuild it.")
    d1, d2, d3, d4 = st.columns(4)
    d1.download_button("train.jsonl", train.read_bytes(), file_name=f"{run}-train.jsonl",
                       mime="application/jsonl", icon=":material/download:")
    d2.download_button("candidates.csv", df.drop(columns=[c for c in df.columns
                                                          if c.startswith("f_")])
                       .to_csv(index=False).encode("utf-8"),
                       file_name=f"{run}-candidates.csv", mime="text/csv",
                       icon=":material/download:")
    d3.download_button("report.json", json.dumps(report, indent=2).encode("utf-8"),
                       file_name=f"{run}-report.json", mime="application/json",
                       icon=":material/download:")
    d4.download_button("alpaca.json", lambda: filtering.export_bytes(rd.path, "alpaca"),
                       file_name=f"{run}-alpaca.json", mime="application/json",
                       icon=":material/download:",
                       help="instruction/input/output records (`selfguide export "
                            "--format alpaca`), written to the run's export/ folder too.")
    st.page_link(frame.page_path("finetune"), label="Next: finetune on this dataset",
                 icon=":material/arrow_forward:")


def selfguide_view(rd: RunDir, cands, task) -> None:
    """A SELF-GUIDE run's candidates: settings on the left, results on the right."""
    settings, main = st.columns([1, 3], gap="large")
    with settings:
        st.subheader("Filters")
        values = widgets.config_form(FilterConfig, f"filter.{rd.name}",
                                     base=filtering.saved_filter_config(rd.path), columns=1,
                                     sliders=SLIDERS)
        cfg = widgets.build_config(FilterConfig, values)
    if cfg is None:
        return
    overrides = filtering.read_overrides(rd.path)
    eff, choice = filtering.resolve(rd.path, cands, cfg, task)  # label strategy auto resolved
    df = filtering.apply(cands, eff, task, overrides)
    kept = int(df["kept"].sum())
    with main:
        _headline(df, overrides, eff, choice, task)
        _chart_tabs(df, cfg, task)
        st.subheader("Candidates")
        candidates_editor(rd, df, overrides, filtering.ORDER, filtering.TABLE_COLS)
        _save(rd, cfg, kept)
        if rd.records_file("train").is_file():
            _downloads(rd, df, cfg)
        elif kept == 0:
            st.warning("No row passes the filters. Loosen a threshold or keep rows by hand.")
