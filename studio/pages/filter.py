"""Filter page: every filter as a slider or input; counts, charts and the table update at
once from the cached candidates table (no regeneration); manual keep/drop overrides; save
the dataset and export it. The views live in ``studio.filter_views``."""

from __future__ import annotations

import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.rundir import RunDir
from studio import filter_views, filtering, frame, widgets

frame.ensure(__file__)  # a page started on its own runs inside the frame

st.title("Filter")
st.caption("Step 4 of 6 · Decide which synthetic examples are good enough to train on. "
           "Every change below re-applies the filters to the saved candidates instantly.")
widgets.show_flash()
run = widgets.require_run("Filtering")
rd = RunDir.named(run)

if filtering.method_of(rd.path).name == "selfinstruct":
    filter_views.selfinstruct_view(rd)
    st.stop()

try:
    cands = filtering.load_candidates(rd.path)
except SelfGuideError as exc:
    widgets.show_error(exc)
    st.stop()
if cands is None:
    st.info("No candidates yet. Run **Synthesize** first; its results appear here.")
    st.page_link(frame.page_path("synthesize"), label="Go to Synthesize",
                 icon=":material/auto_awesome:")
    st.stop()
filter_views.selfguide_view(rd, cands, filtering.load_task(rd.path))
