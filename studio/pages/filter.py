"""Filter page: every filter as a slider or input; counts, charts and the table update at
once from the cached candidates table (no regeneration); manual keep/drop overrides; save
the dataset and export it. The view is the run's method's (``studio.views.methods``)."""

from __future__ import annotations

import streamlit as st

from selfguide.errors import SelfGuideError
from selfguide.runs.rundir import RunDir
from studio.app import frame, widgets
from studio.views import filter_lock
from studio.views import filter_rows as filtering
from studio.views import methods as method_views

frame.ensure(__file__)  # a page started on its own runs inside the frame

st.title("Filter")
st.caption("Step 4 of 6 · Decide which synthetic examples are good enough to train on. "
           "Every change below re-applies the filters to the saved candidates instantly.")
widgets.show_flash()
run = widgets.require_run("Filtering")
rd = RunDir.named(run)

if (locked := filter_lock.lock_reason(rd)) is not None:  # a training reads the dataset
    st.info(locked, icon=":material/lock:")
    filter_lock.read_only_view(rd)
    st.stop()

try:
    method = filtering.method_of(rd.path)
except SelfGuideError as exc:
    widgets.show_error(exc)
    st.stop()
method_views.parts(method).filter_view(rd)
