"""The Compare page's sections: the before/after scores, per-label tables, the examples
with a word-level diff, a free-form try of both models, downloads and the GGUF export.

What it does: draws a run's ``eval/metrics.json`` and ``eval/predictions.jsonl`` (as
``selfguide eval`` wrote them) with ``studio.app.diffs`` frames; runs one typed input through
the cached base and finetuned models (``selfguide.models.tryout.try_both``); starts the GGUF
export job and offers its files. Model text is shown as text only.

What it does not do: evaluate (the ``eval`` job does), load models itself
(``studio.app.resources``) or export (the ``export-model`` job does).
"""

from __future__ import annotations

import functools
import json

import pandas as pd
import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.evaluation import compare
from selfguide.models import tryout
from selfguide.runs.rundir import RunDir
from selfguide.settings import cli as cliargs
from studio.app import diffs, resources, state, widgets
from studio.app import jobs as sjobs
from studio.app.downloads import csv_bytes
from studio.views import compare_unlabeled as unlabeled_views

GGUF_QUANTS = ("f16", "q8_0", "q5_1", "q4_1", "bf16", "f32")
_SCORE_COLS = ("before", "after", "delta", "ci_low", "ci_high")


def ci_text(low: float, high: float) -> str:
    """A confidence interval as the page shows it: "no change" when both ends round to 0,
    "±x" when it is symmetric around 0, else "low … high"."""
    lo, hi = round(float(low), 2) + 0.0, round(float(high), 2) + 0.0  # no -0.00
    if lo == 0 and hi == 0:
        return "no change"
    if lo == -hi:
        return f"±{hi:.2f}"
    return f"{lo:+.2f} … {hi:+.2f}"


def results(rd: RunDir, metrics: dict | None, rows: list[dict], max_new_tokens: int) -> None:
    """Everything after the Evaluate button: the scores (or the label-free comparison), the
    examples, the free-form try (always, evaluated or not) and the downloads."""
    if metrics is None:
        free_form(rd, max_new_tokens)
        return
    if metrics.get("mode") == "unlabeled":
        unlabeled_views.label_caveat(rd)
        unlabeled_views.results(metrics, rows)
    else:
        scores(metrics, rd)
        label_tables(metrics)
        examples(rows)
    free_form(rd, max_new_tokens)
    downloads(rd.name, metrics, rows)


def scores(metrics: dict, rd: RunDir | None = None) -> None:
    """The headline metric before/after, its paired-bootstrap interval, and every metric."""
    st.subheader("Scores")
    if metrics.get("collapse") and not metrics.get("warnings"):
        unlabeled_views.verdict(metrics)
    for warning in metrics.get("warnings") or []:
        st.warning(warning, icon=":material/warning:")
    if rd is not None:
        unlabeled_views.label_caveat(rd)
    name = metrics.get("metric", "score")
    diff = metrics.get("difference") or {}
    c = st.columns(4)
    before, after = metrics.get("before"), metrics.get("after")
    c[0].metric(f"Before ({name})", "—" if before is None else f"{before:.3f}")
    change = None if before is None or after is None else round(after - before, 3)
    c[1].metric(f"After ({name})", "—" if after is None else f"{after:.3f}",
                delta=None if change is None else
                ("no change" if change == 0 else f"{change:+.3f}"),
                delta_color="off" if change == 0 else "normal",
                delta_arrow="off" if change == 0 else "auto")
    if diff:
        c[2].metric("95% CI of after − before", ci_text(diff.get("low", 0), diff.get("high", 0)),
                    help="Paired bootstrap over the examples: if the interval excludes 0 the "
                         "change is unlikely to be noise.")
    c[3].metric("Examples", metrics.get("n"),
                help=f"{metrics.get('changed', 0)} answers changed.")
    table = compare.metric_rows(metrics)
    if table:
        st.caption("Every metric on the same answers. The SELF-GUIDE paper reports a lenient "
                   "exact match (the gold label appears in the answer) and a character-level "
                   "LCS F1 it calls ROUGE-L; they sit beside the strict ones here so its "
                   "tables can be compared.")
        st.dataframe(pd.DataFrame(table)[["name", *_SCORE_COLS]], hide_index=True,
                     width="stretch", column_config={
                         "name": "metric", "ci_low": "95% CI low", "ci_high": "95% CI high",
                         **{c: st.column_config.NumberColumn(format="%.3f")
                            for c in _SCORE_COLS}})


def label_tables(metrics: dict) -> None:
    """Accuracy per label and the confusion tables (classification runs)."""
    acc = diffs.per_label_frame(metrics)
    if acc is not None:
        st.subheader("Accuracy per label")
        st.dataframe(acc, width="stretch", column_config={
            c: st.column_config.NumberColumn(format="%.2f") for c in acc.columns})
    cb = diffs.confusion_frame(metrics.get("confusion_before"))
    ca = diffs.confusion_frame(metrics.get("confusion_after"))
    if ca is not None:
        st.subheader("Per-label confusion")
        left, right = st.columns(2)
        if cb is not None:
            left.caption("Before")
            left.dataframe(cb, width="stretch")
        right.caption("After")
        right.dataframe(ca, width="stretch")


def examples(rows: list[dict]) -> None:
    """The held-out examples by view (all/changed/improved/regressed) and a word diff."""
    st.subheader("Examples")
    ex = diffs.examples_frame(rows)
    ex.index = pd.RangeIndex(1, len(ex) + 1, name="row")  # the same number in every view
    # format_func must be picklable (enforceSerializableSessionState): a dict's .get.
    view_labels = {v: f"{v} ({len(diffs.select(ex, v))})" for v in diffs.VIEWS}
    view = st.radio("Show", diffs.VIEWS, horizontal=True,
                    key=state.widget_key("compare", "view"), format_func=view_labels.get)
    shown = diffs.select(ex, view)
    st.dataframe(shown, hide_index=False, width="stretch",
                 column_config={"score_before": st.column_config.NumberColumn(format="%.2f"),
                                "score_after": st.column_config.NumberColumn(format="%.2f")})
    if len(shown):
        i = st.selectbox("Word diff for row", list(shown.index),
                         key=state.widget_key("compare", f"row.{view}"),
                         help="The row number in the table above (the same in every view).")
        row = shown.loc[i]
        widgets.show_text(row["input"], label="Input")
        st.dataframe(diffs.diff_frame(row["before"], row["after"]), hide_index=True,
                     width="stretch")
        st.caption("Red: only in the base model's answer · green: only after finetuning · "
                   "yellow: replaced.")


def free_form(rd: RunDir, max_new_tokens: int) -> None:
    """Type an input; it goes through both models in the task's prompt."""
    st.subheader("Try both models")
    text = st.text_area("An input for the task", key=state.widget_key("compare", "free"),
                        placeholder="Type an input; it is wrapped in the task's prompt.")
    if not st.button("Run through both", icon=":material/play_arrow:",
                     disabled=not text.strip()):
        return
    try:
        with st.spinner("Generating with both models…"):
            pair = resources.get_tuned(rd.path)
            out = tryout.try_both(rd, text, pair.before, pair.after, chat=pair.chat,
                                  max_new_tokens=max_new_tokens)
        left, right = st.columns(2)
        with left:
            widgets.show_text(out["before"], label="Before (base)")
        with right:
            widgets.show_text(out["after"], label="After (finetuned)")
    except SelfGuideError as exc:
        widgets.show_error(exc)


def stale_note(rd: RunDir) -> None:
    """A warning when the evaluation's inputs changed after it ran (a re-filter or a
    retraining), with what changed and what refreshes it."""
    from selfguide.runs.stale import stale_stages

    s = stale_stages(rd).get("eval")
    if s:
        st.warning(f"This evaluation is stale: {s['changed']}. Refresh it with "
                   f"`{s['refresh']}` (or Launch training, then Evaluate, here).",
                   icon=":material/update:")


def downloads(run: str, metrics: dict, rows: list[dict]) -> None:
    st.subheader("Download")
    d1, d2 = st.columns(2)
    d1.download_button("predictions.csv",
                       csv_bytes(pd.DataFrame(rows)),
                       file_name=f"{run}-predictions.csv", mime="text/csv",
                       icon=":material/download:")
    d2.download_button("metrics.json", json.dumps(metrics, indent=2).encode("utf-8"),
                       file_name=f"{run}-metrics.json", mime="application/json",
                       icon=":material/download:")


def _gguf_files(rd: RunDir, exported: dict) -> None:
    gguf_dir = rd.gguf_dir
    v = exported.get("verify") or {}
    if v:
        st.caption(f"Checked with transformers: logits differ by at most "
                   f"{v['max_abs_diff']:.2g} (logit spread {v['logit_std']:.2g}); the top "
                   f"token agrees at {100 * v['top1_agreement']:.0f}% of positions; the "
                   f"tokenizer {'matches' if v['tokenizer_match'] else 'differs'}.")
    g1, g2, g3 = st.columns(3)
    gfile = gguf_dir / exported["file"]
    g1.download_button(f"{gfile.name} ({gfile.stat().st_size / 2**20:.0f} MiB)",
                       functools.partial(gfile.read_bytes), file_name=gfile.name,
                       mime="application/octet-stream", icon=":material/download:")
    for col, name in ((g2, "Modelfile"), (g3, "README.md")):
        if (gguf_dir / name).is_file():
            col.download_button(name, (gguf_dir / name).read_bytes(), file_name=name,
                                mime="text/plain", icon=":material/download:")
    st.code(f"ollama create {rd.name} -f Modelfile\nollama run {rd.name}", language="bash")


def gguf_export(rd: RunDir) -> None:
    """Start the ``export-model`` job and offer the GGUF file, Modelfile and card."""
    run = rd.name
    st.subheader("Run it elsewhere (GGUF + Ollama)")
    st.caption("The finetuned model with its adapter merged in, as one GGUF file (llama.cpp, "
               "Ollama, LM Studio, transformers) with an Ollama Modelfile and a model card. "
               "The file is loaded back with transformers and checked against the merged "
               "model.")
    gjob = sjobs.status(run, "export-model")
    q1, q2 = st.columns([1, 3])
    quant = q1.selectbox("Tensor type", GGUF_QUANTS, key=state.widget_key("compare", "quant"),
                         help="f16: full quality; q8_0: about half the size, near-lossless; "
                              "q4_*/q5_*: smaller, lossier.")
    argv = cliargs.job_argv("export-model", run=run,
                            options={"out": str(rd.gguf_dir), "quant": quant},
                            flags=["--force"])
    if q2.button("Export GGUF", icon=":material/deployed_code:",
                 disabled=sjobs.is_active(gjob)) and widgets.start_job(run, "export-model",
                                                                       argv):
        st.rerun()
    widgets.job_panel(run, "export-model", title="GGUF export job")
    exported = rd.read_gguf_export()
    if isinstance(exported, dict) and (rd.gguf_dir / str(exported.get("file"))).is_file():
        _gguf_files(rd, exported)
