"""The structure the demos' inputs share, as the Task, Synthesize and Filter pages show it.

What it does: :func:`show_template` states the template a task's demos share (field
markers in order, separators, a marked span, line count) and what SELF-GUIDE does with
it; :func:`structure_tab` draws the Filter page's histogram of each candidate's share of
the template with the ``min_structure`` threshold and the inputs it drops.

It does not infer the template (``selfguide.task.structure``) or filter (the method does).
"""

from __future__ import annotations

import streamlit as st

from selfguide.task.structure import infer_template
from studio.app import charts


def show_template(spec) -> None:
    """A caption under the demos: the structure their inputs share, if any."""
    if spec is None or len(spec.demos) < 2:
        return
    template = infer_template([d.input for d in spec.demos])
    if template.empty:
        st.caption("Input structure: the demos' inputs share no fields or markers; new "
                   "inputs are free text like them.")
        return
    start = (f" Each new input starts with **{template.prefix}** written by the studio, "
             "and the model fills the rest." if template.prefix else "")
    st.info(f"**Input structure the demos share:** {template.describe()}. New inputs must "
            f"keep it (the *min structure* filter) so that they can be labelled like the "
            f"demos.{start}", icon=":material/schema:")


def structure_tab(df, task, min_structure: float) -> None:
    """The Filter page's Structure tab."""
    template = infer_template([d.input for d in task.demos]) if task is not None else None
    if template is None or template.empty or "structure_score" not in df.columns:
        st.caption("The demos' inputs share no structure: this filter does nothing here.")
        return
    st.caption(f"Template the demos share: **{template.describe()}**. Each bar counts inputs "
               f"by the share of it they carry; below {min_structure:.2f} they are dropped "
               "(reason *structure*).")
    st.altair_chart(charts.shares(df, "structure_score", "share of the demos' structure",
                                  min_structure if min_structure > 0 else None),
                    width="stretch")
    dropped = df.loc[df["drop_reason"] == "structure", ["id", "input", "structure_score"]]
    if len(dropped):
        st.markdown(f"**Dropped for structure** ({len(dropped)})")
        st.dataframe(dropped.head(50), hide_index=True, width="stretch", height=220)
