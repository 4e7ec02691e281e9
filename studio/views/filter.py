"""The Filter page's two views: SELF-GUIDE candidates (every filter live, charts, manual
keep/drop, save and downloads) and Self-Instruct rounds (instance filters live, pool
filters read-only), and the candidates editor they share.

What it does: draws the views from the cached candidates the filtering modules compute
(``studio.views.filter_rows`` for SELF-GUIDE, ``studio.views.filter_selfinstruct`` for Self-Instruct) and saves
manual decisions and datasets through them.

What it does not do: filter or write datasets itself (the filtering modules and the
library do), or regenerate anything.
"""

from __future__ import annotations

import json

import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.methods import candidates
from selfguide.methods.selfguide.config import FilterConfig
from selfguide.methods.selfguide.relation import task_relation
from selfguide.methods.selfguide.report import unchanged_answers
from selfguide.runs.rundir import RunDir
from studio.app import charts, downloads, frame, state, widgets
from studio.app import jobs as sjobs
from studio.views import filter_repairs as repairs
from studio.views import filter_rows as filtering
from studio.views import structure as structure_view

SLIDERS = {"min_structure": (0.0, 1.0, 0.05), "length_k": (0.0, 10.0, 0.25),
           "near_duplicate_threshold": (0.05, 1.0, 0.05),
           "min_frequency": (0.0, 1.0, 0.05), "min_agreement": (0.0, 1.0, 0.05),
           "relation_margin": (0.0, 5.0, 0.25), "val_fraction": (0.0, 0.5, 0.05),
           "calibration_margin": (0.0, 5.0, 0.1), "dominant_label_share": (0.05, 1.0, 0.05),
           "low_vote_share": (0.0, 1.0, 0.05)}
ROUGE_COLUMN = {"score": st.column_config.ProgressColumn("ROUGE-L", min_value=0.0,
                                                         max_value=1.0, format="%.2f")}


def _editor_columns(view, task) -> dict:
    labels = list(task.labels) if task is not None and task.is_classification else None
    cfg = {
        "decision": st.column_config.SelectboxColumn(
            "decision", options=list(filtering.DECISIONS), required=True,
            help="auto: follow the filters · keep / drop: your decision wins"),
        "kept": st.column_config.CheckboxColumn("kept"),
        "edited": st.column_config.CheckboxColumn(
            "edited", help="You corrected this row's output or label (overrides.json keeps "
                           "who, when and the original value)."),
        "output": st.column_config.TextColumn(
            "output", help="Edit to correct the answer the dataset gets for this row."),
        "vote_share": st.column_config.NumberColumn(
            "top answer share", format="%.2f",
            help="Share of the samples that gave the most frequent answer (the vote "
                 "winner)."),
        "label_share": st.column_config.NumberColumn(
            "votes for label", format="%.2f",
            help="Share of the samples that voted for this row's label (with the target or "
                 "calibrated strategy the label need not be the vote winner).")}
    if labels:
        cfg["label"] = st.column_config.SelectboxColumn(
            "label", options=labels, help="Pick another label to correct this row.")
    return cfg


def _editable(view, task) -> set[str]:
    """decision, and the field that becomes the training completion: the label of a
    classification row, else the output."""
    cls = task is not None and task.is_classification
    return {"decision", "label" if cls else "output"} & set(view.columns)


def candidates_editor(rd: RunDir, df, overrides: dict, order: tuple, columns: tuple, *,
                      task=None, label_is_output: bool = False) -> None:
    """The candidates table, filterable by drop reason: keep/drop decisions and
    corrections of a row's output or label, saved to overrides.json at once (the counts
    above follow on the next run)."""
    run = rd.name
    show = st.multiselect("Show rows", filtering.reason_options(df, order), default=[],
                          key=state.widget_key(f"filter.{run}", "show"),
                          placeholder="all rows — or pick 'kept' / drop reasons")
    shown = repairs.decorate(df, candidates.read_repairs(rd.path),
                             label_is_output=label_is_output)
    if task is not None and task.is_classification and "label" in shown.columns:
        shown["label_share"] = repairs.label_share(shown, task)
    no_labels = task is not None and not task.is_classification  # an empty column: hide
    cols = (columns[0], "edited", *[c for c in columns[1:] if c != "vote_share"
                                    and not (no_labels and c in ("label", "target_label"))],
            "label_share", "vote_share")
    view = filtering.table(shown, overrides, show, cols)
    version = state.draft(f"filter.{run}.editor").get("v", 0)
    what = "label" if task is not None and task.is_classification else "output"
    st.caption(f"Edit a row's **{what}** to correct it (the raw candidates never change; "
               "*edited* marks corrected rows); a corrected row is kept unless you set it "
               "to drop.")
    edited = st.data_editor(
        view, hide_index=True, width="stretch", height=380,
        key=state.widget_key(f"filter.{run}", f"table.{version}"),
        disabled=[c for c in view.columns if c not in _editable(view, task)],
        column_config=_editor_columns(view, task))
    decisions = filtering.decisions_changed(view, edited)
    fixes = repairs.table_changes(view, edited)
    if decisions or fixes:
        _save_edits(rd, df, overrides, decisions, fixes)
    if task is not None and task.is_classification:
        _bulk_label(rd, df, view, overrides, task, version)
    if len(view) >= filtering.TABLE_LIMIT:
        st.caption(f"Showing the first {filtering.TABLE_LIMIT} rows; narrow with the filter.")


def _save_edits(rd: RunDir, df, overrides: dict, decisions: dict, fixes: dict) -> None:
    try:
        now = filtering.write_overrides(rd.path, {**overrides, **decisions})
        if fixes:
            repairs.save(rd.path, df, fixes, now)
    except SelfGuideError as exc:
        widgets.show_error(exc)
    else:
        _bump(rd.name)


def _bump(run: str) -> None:
    version = state.draft(f"filter.{run}.editor").get("v", 0)
    state.set_draft(f"filter.{run}.editor", {"v": version + 1})
    st.rerun()


def _bulk_label(rd: RunDir, df, view, overrides: dict, task, version: int) -> None:
    """Select rows and set their label (or undo their corrections) in one go."""
    texts = dict(zip(view["id"], view["input"])) if "input" in view.columns else {}
    with st.expander("Set the label of several rows"):
        picked = st.multiselect("Rows", [f"{i} · {texts.get(i, '')[:70]}" for i in view["id"]],
                                key=state.widget_key(f"filter.{rd.name}", f"bulk.{version}"),
                                placeholder="pick the rows to correct")
        ids = [p.split(" · ", 1)[0] for p in picked]  # options as text: session state pickles
        label = st.selectbox("New label", list(task.labels),
                             key=state.widget_key(f"filter.{rd.name}", "bulk_label"))
        c1, c2 = st.columns(2)
        try:
            if c1.button(f"Set label of {len(ids)} rows", disabled=not ids,
                         icon=":material/edit:"):
                repairs.save(rd.path, df, {i: {"label": label} for i in ids}, overrides)
                _bump(rd.name)
            if c2.button("Undo their corrections", disabled=not ids, icon=":material/undo:"):
                repairs.undo(rd.path, ids)
                _bump(rd.name)
        except SelfGuideError as exc:
            widgets.show_error(exc)


# --------------------------------------------------------------------------- SELF-GUIDE

def _headline(df, overrides: dict, eff, choice, task) -> None:
    n, kept = len(df), int(df["kept"].sum())
    c = st.columns(4)
    c[0].metric("Candidates", n)
    c[1].metric("Kept", kept, help="Rows that pass every filter (or that you kept by hand).")
    c[2].metric("Dropped", n - kept)
    c[3].metric("Manual overrides", len(overrides))
    if filtering.choice_message(choice):
        (st.warning if choice.beats_chance is False else st.info)(
            filtering.choice_message(choice))
    for level, msg in filtering.diagnostics(df, eff, task):
        {"error": st.error, "warning": st.warning}.get(level, st.info)(msg)


def _vote_share_tab(df, cfg: FilterConfig, eff: FilterConfig, task) -> None:
    """The vote-share histogram and a caption that says the rule in effect: the
    threshold drops rows only when the labels (or outputs) come from the vote. Generation:
    the consensus answer's agreement with the other samples, and the min agreement."""
    if task is not None and not task.is_classification and "agreement" in df.columns \
            and df["agreement"].notna().any():
        st.altair_chart(charts.shares(df, "agreement", "agreement of the consensus answer "
                                      "with the other samples (mean ROUGE-L)",
                                      cfg.min_agreement or None), width="stretch")
        st.caption(f"min agreement = {cfg.min_agreement:.2f} (the dashed line): the answer "
                   "kept is the sample that agrees most with the others; rows whose "
                   "agreement is lower are dropped (reason *agreement*)." + _no_edit(df, task))
        return
    off = filtering.inert_controls(eff, task).get("min_frequency")
    st.altair_chart(charts.vote_shares(df, None if off else cfg.min_frequency),
                    width="stretch")
    colours = ("Colours show each row's final decision: green kept, red dropped (by "
               "any filter).")
    if off:
        st.caption(f"The vote share decides nothing now: {off} {colours}")
    else:
        st.caption(f"min_frequency = {cfg.min_frequency:.2f} (the dashed line): rows whose "
                   f"top answer has a lower share are dropped (self-consistency); rows to "
                   f"the right can still be dropped by another filter. {colours}")


def _no_edit(df, task) -> str:
    """Where the demos edit lightly, how many answers are their input unchanged (stage 2
    counts the input itself among the candidates there)."""
    if not task_relation(task).edits_lightly:
        return ""
    same, answered = unchanged_answers(df["input"], df["output"])
    return (" The demos edit their inputs lightly, so the input itself (no edit) is a "
            f"candidate too: {same} of {answered} answers keep their input unchanged, "
            "where the samples agreed with it more than on any rewrite.")


def _chart_tabs(df, cfg: FilterConfig, eff: FilterConfig, task) -> None:
    tabs = st.tabs(["Funnel", "Labels", "Structure", "Lengths", "Vote share",
                    "Near-duplicates"])
    with tabs[0]:
        st.altair_chart(charts.funnel(filtering.reason_counts(df)), width="stretch")
        st.caption("Each dropped row is counted once, at the first filter it fails "
                   "(filters run top to bottom).")
        origins = filtering.origin_counts(df)
        if origins is not None:
            st.markdown("**By origin**")
            st.dataframe(origins, hide_index=True, width="stretch")
            st.caption("given = your own inputs, labelled by the model (only the empty, "
                       "held-out and duplicate filters judge them, unless 'filter given'); "
                       "generated = inputs the model wrote. held_out = rows dropped as "
                       "copies of the task's held-out evaluation rows.")
    with tabs[1]:
        labels = filtering.label_counts(df, task)
        if labels is None:
            st.caption("Generation task: no labels.")
        else:
            st.altair_chart(charts.labels(labels), width="stretch")
            agree = filtering.strategy_agreement(df, task)
            if agree is not None:
                st.caption("Each input was written for a label. How often each way of "
                           "self-labelling agrees with it, and how often labels with the "
                           "same shares would agree by chance: where it stays near chance "
                           "the model's labels and its inputs do not follow each other. "
                           "'own' is the model's likeliest label in the form it answers in.")
                st.dataframe(agree, hide_index=True, width="stretch")
    with tabs[2]:
        structure_view.structure_tab(df, task, cfg.min_structure)
    with tabs[3]:
        st.altair_chart(charts.lengths(filtering.lengths(df)), width="content")
    with tabs[4]:
        if "vote_share" in df.columns:
            _vote_share_tab(df, cfg, eff, task)
        else:
            st.caption("No answers yet (stage 2 has not run).")
    with tabs[5]:
        nd = filtering.near_duplicates(df, task, cfg)
        st.caption(f"Inputs whose ROUGE-L to a demo or an earlier input is ≥ "
                   f"{cfg.near_duplicate_threshold:.2f} are dropped. Closest pairs first.")
        st.dataframe(nd, hide_index=True, width="stretch", height=300,
                     column_config=ROUGE_COLUMN)


def saved_message(rep: dict) -> str:
    """What Save wrote, with the one validation split's words (``trainer.validation_split``:
    a validation file here, else training holds rows back)."""
    n, val = rep.get("train", rep.get("kept")), int(rep.get("val") or 0)
    if val:
        return (f"Saved {n} training rows and {val} validation rows; training validates on "
                "these.")
    return (f"Saved {n} rows. Training holds back its validation rows from these (its "
            "validation fraction, shown on the Finetune page before Launch).")


def _save(rd: RunDir, cfg: FilterConfig, kept: int) -> None:
    st.subheader("Save")
    busy = sjobs.is_active(sjobs.status(rd.name, "synthesize"))
    c1, c2 = st.columns([1, 2])
    if c1.button("Save dataset", type="primary", icon=":material/save:",
                 disabled=kept == 0 or busy):
        try:
            with st.spinner("Writing the dataset…"):
                rep = filtering.save_dataset(rd.path, cfg)
            state.flash("success", saved_message(rep))
            st.rerun()
        except SelfGuideError as exc:
            widgets.show_error(exc)
    c2.caption("Writes dataset/train.jsonl (and val.jsonl) with these settings and your "
               "overrides, plus dataset/report.json with the diagnostics — the same as "
               "`selfguide filter`." + (" Wait for the synthesis job to finish." if busy
                                        else ""))


def _downloads(rd: RunDir, df, cfg: FilterConfig) -> None:
    run = rd.name
    report = rd.read_report() or {}
    if not filtering.saved_matches(rd.path, cfg):
        st.caption("The saved dataset was built with other settings than those shown; "
                   "press Save dataset to rebuild it.")
    d1, d2, d3, d4 = st.columns(4)
    d1.download_button("train.jsonl", rd.records_bytes("train"), file_name=f"{run}-train.jsonl",
                       mime="application/jsonl", icon=":material/download:")
    edited = repairs.decorate(df, candidates.read_repairs(rd.path))
    d2.download_button("candidates.csv", downloads.csv_bytes(edited.drop(
                           columns=[c for c in edited.columns if c.startswith("f_")])),
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
    inert_key = f"filter.{rd.name}.inert"  # the controls drawn disabled, from the last run
    with settings:
        st.subheader("Filters")
        values = widgets.config_form(FilterConfig, f"filter.{rd.name}",
                                     base=filtering.saved_filter_config(rd.path), columns=1,
                                     sliders=SLIDERS, disabled=state.draft(inert_key))
        cfg = widgets.build_config(FilterConfig, values)
    if cfg is None:
        return
    overrides = filtering.read_overrides(rd.path)
    eff, choice = filtering.resolve(rd.path, cands, cfg, task)  # label strategy auto resolved
    inert = filtering.inert_controls(eff, task)
    if inert != state.draft(inert_key):  # the strategy in effect changed: redraw the form
        state.set_draft(inert_key, inert)
        st.rerun()
    df = filtering.apply(cands, eff, task, overrides)
    kept = int(df["kept"].sum())
    with main:
        _headline(df, overrides, eff, choice, task)
        topup = filtering.topup_message((rd.read_report() or {}).get("topup"),
                                        eff.label_strategy)
        if topup:
            st.info(topup)
        _chart_tabs(df, cfg, eff, task)
        st.subheader("Candidates")
        candidates_editor(rd, df, overrides, filtering.ORDER, filtering.TABLE_COLS, task=task)
        _save(rd, cfg, kept)
        if rd.records_file("train").is_file():
            _downloads(rd, df, cfg)
        elif kept == 0:
            st.warning("No row passes the filters. Loosen a threshold or keep rows by hand.")
