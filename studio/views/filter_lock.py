"""The Filter page while a training on the run runs: read-only (issue 40).

What it does: says why the page cannot change the dataset now (a training job reads it)
and shows what the training uses: the saved dataset's counts and rows, without a single
control that could rebuild it.

What it does not do: filter, save or cancel anything (the Finetune page cancels training).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from selfguide.runs import workspace
from selfguide.runs.rundir import RunDir

LOCKING_STAGES = ("train",)  # jobs that read the dataset the Filter page would rewrite


def lock_reason(rd: RunDir) -> str | None:
    """Why the page is read-only now, or None."""
    if not any(s in LOCKING_STAGES for s in workspace.active_jobs(rd.name)):
        return None
    return ("A training job of this run is running on its saved dataset, so the Filter page "
            "is read-only until it ends: changing the filters or the rows now would change "
            "the data under the training. Cancel the training on the Finetune page to edit "
            "again.")


def read_only_view(rd: RunDir) -> None:
    """The dataset the running training uses: counts and rows, nothing editable."""
    report = rd.read_report() or {}
    records = rd.read_records("train") if rd.has_dataset() else []
    c = st.columns(3)
    c[0].metric("Candidates", report.get("candidates", "—"))
    c[1].metric("Training rows", len(records))
    c[2].metric("Held back (validation file)", len(rd.read_records("val"))
                if rd.has_dataset() else 0)
    if records:
        st.dataframe(pd.DataFrame([{"input": str(r.get("input") or ""),
                                    "output": str(r.get("output") or r.get("completion") or "")}
                                   for r in records]), hide_index=True, width="stretch")
