"""The studio's charts (Altair specs) over the small frames ``studio.views.filter_rows`` and
``studio.views.filter_selfinstruct`` compute: the funnel of drop reasons, kept labels, lengths and vote
shares, with one kept/dropped colour scale.

What it does: builds chart objects; the pages draw them with ``st.altair_chart``.
What it does not do: compute the data (the filtering modules do) or draw anything itself.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

# One colour scale for kept vs dropped rows, in every chart that splits them.
KEPT_SCALE = alt.Scale(domain=["kept", "dropped"], range=["#2e7d32", "#c62828"])


def kept_colour(field: str, **kw) -> alt.Color:
    """``field`` (values ``kept``/``dropped``) coloured with :data:`KEPT_SCALE`."""
    return alt.Color(f"{field}:N", scale=KEPT_SCALE, **kw)


def funnel(fun: pd.DataFrame, *, coloured: bool = True) -> alt.Chart:
    """Rows per reason (``reason``, ``count``; ``kind`` kept/dropped when ``coloured``)."""
    enc = {"x": alt.X("count:Q", title="rows"),
           "y": alt.Y("reason:N", sort=list(fun["reason"]), title=None),
           "tooltip": ["reason", "count"]}
    if coloured:
        enc["color"] = kept_colour("kind", legend=None)
    return alt.Chart(fun).mark_bar().encode(**enc)


def labels(counts: pd.DataFrame) -> alt.Chart:
    """Kept rows per label (``label``, ``kept``)."""
    return alt.Chart(counts).mark_bar().encode(
        x=alt.X("label:N", sort="-y"), y=alt.Y("kept:Q", title="kept rows"),
        tooltip=["label", "kept"])


def lengths(lens: pd.DataFrame) -> alt.Chart:
    """Histograms of words per field (``words``, ``status``, ``field``)."""
    return alt.Chart(lens).mark_bar(opacity=0.7).encode(
        x=alt.X("words:Q", bin=alt.Bin(maxbins=30), title="words"),
        y=alt.Y("count():Q", stack=None, title="rows"),
        color=kept_colour("status"),
        column=alt.Column("field:N", title=None))


def vote_shares(df: pd.DataFrame, threshold: float | None = None) -> alt.Chart:
    """Histogram of ``vote_share`` split by each row's final kept/dropped decision (``df``
    has ``kept``), with the self-consistency ``threshold`` as a dashed rule when it
    applies."""
    return shares(df, "vote_share", "share of samples agreeing with the top answer", threshold)


def shares(df: pd.DataFrame, column: str, title: str, threshold: float | None = None
           ) -> alt.Chart:
    """Histogram of a 0..1 ``column`` split by each row's final decision, with the filter's
    ``threshold`` as a dashed rule when it applies."""
    vs = df.assign(status=df["kept"].map({True: "kept", False: "dropped"}))
    vs = vs[[column, "status"]].dropna()
    bars = alt.Chart(vs).mark_bar().encode(
        x=alt.X(f"{column}:Q", bin=alt.Bin(step=0.1, extent=[0, 1.0001]), title=title),
        y=alt.Y("count():Q", stack="zero", title="rows"),
        color=kept_colour("status"))
    if threshold is None:
        return bars
    rule = alt.Chart(pd.DataFrame({"threshold": [threshold]})).mark_rule(
        strokeDash=[4, 4], color="#333").encode(x="threshold:Q")
    return bars + rule


def loss(pts: pd.DataFrame) -> alt.Chart:
    """The training loss curve (``step``, ``loss``, ``kind`` train/validation): whole-number
    step ticks and rounded loss labels, also for a single logged point (issue 15, item 8)."""
    return alt.Chart(pts).mark_line(point=True).encode(
        x=alt.X("step:Q", title="step", axis=alt.Axis(format="d", tickMinStep=1)),
        y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False),
                axis=alt.Axis(format=".3~f")),
        color=alt.Color("kind:N", title=None),
        tooltip=[alt.Tooltip("step:Q", format="d"), alt.Tooltip("loss:Q", format=".4f"),
                 "kind"])
