"""The Compare page without a test set (issues 39 and 40): what the evaluation will compare
on, the user's own inputs without labels, and the label-free results (answer shares,
agreement, entropy, the collapse verdict) with the examples side by side.

What it does: asks :func:`selfguide.evaluation.predict.plan` which comparison an evaluation
of the run makes (so the page says it before the job starts, and never starts one that
would be refused), saves the inputs the user types into the run
(:func:`selfguide.evaluation.unlabeled.save_own_inputs`) and draws an ``eval/metrics.json``
of mode ``unlabeled``.

What it does not do: evaluate (the ``eval`` job does) or load models.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.evaluation import compare, unlabeled
from selfguide.evaluation import predict as evaluation
from selfguide.runs.rundir import RunDir
from studio.app import messages, state

ANSWER_VIEWS = ("all", "different")


def plan_note(rd: RunDir) -> bool:
    """Say what "Evaluate" will compare on; False (and why) when there is nothing."""
    task = rd.read_task()
    if task is None:
        st.info("This run has no task, so there is nothing to evaluate on.")
        return False
    try:
        mode, rows, source = evaluation.plan(rd, task)
    except SelfGuideError as exc:
        st.info("This task has no held-out rows and the run has no inputs it was not trained "
                "on. Add held-out rows (an input and its expected output) on the Task page, "
                "or type inputs without labels below: both models answer them and the page "
                "compares the answers.", icon=":material/info:")
        st.caption(str(exc).split("\n")[0])
        return False
    if mode == "labelled":
        st.caption(f"Evaluates on {len(rows)} held-out rows with expected outputs "
                   f"({source}): scores before and after.")
    else:
        st.info(f"This task has no held-out rows with expected outputs, so the comparison "
                f"runs on {len(rows)} inputs without labels: {source}. It shows how often "
                "the two models agree, how their answers spread over the labels, and whether "
                "the tuned model collapsed to one answer, not which model is right. Add "
                "held-out rows on the Task page for scores.", icon=":material/info:")
    return True


def own_inputs_form(rd: RunDir) -> None:
    """Type or paste inputs without labels (one per line), saved in the run (offered while
    the task has no held-out rows: with rows, the comparison scores those)."""
    task = rd.read_task()
    if task is None or task.test:
        return
    saved = unlabeled.own_inputs(rd)
    with st.expander(f"Your own inputs without labels ({len(saved)} saved)",
                     expanded=False):
        st.caption("One input per line. When the task has no held-out rows, the comparison "
                   "uses these instead of the run's held-out synthetic inputs. They are never "
                   "used for synthesis or training.")
        text = st.text_area("Inputs, one per line", value="\n".join(saved),
                            key=state.widget_key("compare", "own_inputs"), height=150)
        if st.button("Save inputs", icon=":material/save:"):
            n = unlabeled.save_own_inputs(rd, text.splitlines())
            state.flash("success", f"Saved {n} inputs for the comparison." if n else
                        "Removed your inputs: the comparison uses the run's held-out "
                        "synthetic inputs.")
            st.rerun()


def verdict(metrics: dict) -> None:
    """The collapse verdict, plainly (labelled or not)."""
    v = metrics.get("collapse")
    if v:
        st.error(v.get("message") or "Collapse: the tuned model answers one label to nearly "
                 "every input.", icon=":material/error:")
    elif metrics.get("mode") == "unlabeled":
        st.success("No collapse: the tuned model does not answer one label to nearly every "
                   "input.", icon=":material/check_circle:")


def results(metrics: dict, rows: list[dict]) -> None:
    """Agreement, entropy, the answer shares and the examples of a label-free comparison."""
    st.subheader("Base vs tuned, without labels")
    st.caption(compare.unlabeled_lines(metrics)[0])
    verdict(metrics)
    a = metrics.get("answers_after") or {}
    b = metrics.get("answers_before") or {}
    c = st.columns(4)
    c[0].metric("Inputs", metrics.get("n"))
    agreement = metrics.get("agreement")
    c[1].metric("Agreement", "—" if agreement is None else f"{100 * agreement:.0f}%",
                help="Share of inputs where the base and the tuned model give the same "
                     "answer.")
    c[2].metric("Spread before", "—" if b.get("entropy") is None else
                f"{b['entropy']:.2f} bits", help="Entropy of the base model's answers: 0 = "
                                                 "one answer for every input.")
    c[3].metric("Spread after", "—" if a.get("entropy") is None else f"{a['entropy']:.2f} bits",
                help="Entropy of the tuned model's answers: 0 = one answer for every input.")
    shares = compare.share_rows(metrics)
    if shares:
        st.dataframe(pd.DataFrame(shares), hide_index=True, width="stretch", column_config={
            "answer": "answer", "base": "base (inputs)", "tuned": "tuned (inputs)",
            "base_share": st.column_config.NumberColumn("base share", format="percent"),
            "tuned_share": st.column_config.NumberColumn("tuned share", format="percent")})
    examples(rows)


def examples(rows: list[dict]) -> None:
    """The inputs with both answers; 'different' shows where the models disagree."""
    st.subheader("Answers side by side")
    df = pd.DataFrame([{"input": str(r.get("input") or ""),
                        "before": str(r.get("before") or ""),
                        "after": str(r.get("after") or ""),
                        "same": not r.get("changed", False)} for r in rows],
                      columns=["input", "before", "after", "same"])
    labels = {v: f"{v} ({len(df) if v == 'all' else int((~df['same']).sum())})"
              for v in ANSWER_VIEWS}
    view = st.radio("Show", ANSWER_VIEWS, horizontal=True, format_func=labels.get,
                    key=state.widget_key("compare", "answers_view"))
    shown = df if view == "all" else df[~df["same"]]
    st.dataframe(shown, hide_index=True, width="stretch")


def label_caveat(rd: RunDir) -> None:
    """The Filter page's caveat beside the gain: labels that do not follow the inputs."""
    text = messages.label_caveat(rd.read_report())
    if text:
        st.warning(text, icon=":material/warning:")
