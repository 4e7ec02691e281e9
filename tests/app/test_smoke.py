"""Every page renders from a cold start without an exception, and explains what to do."""

from __future__ import annotations

from pathlib import Path

from studio.app import state

PAGES_DIR = Path(__file__).resolve().parents[2] / "studio" / "pages"

PAGES = ["studio/pages/model.py", "studio/pages/task.py", "studio/pages/synthesize.py",
         "studio/pages/filter.py", "studio/pages/finetune.py", "studio/pages/compare.py",
         "studio/pages/runs.py"]
NEEDS_RUN = {"studio/pages/synthesize.py", "studio/pages/filter.py",
             "studio/pages/finetune.py", "studio/pages/compare.py"}


def _texts(at) -> str:
    parts = [e.value for e in (*at.info, *at.warning, *at.error, *at.success)]
    parts += [m.value for m in at.markdown] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


def test_cold_start_every_page(app):
    at = app()
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Model"
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, [e.value for e in at.error])
        if page in NEEDS_RUN:
            assert "No run selected" in _texts(at), page


def test_cold_start_with_runs_lists_them(app, runs):
    runs.task("alpha")
    runs.candidates("beta")
    at = app()
    at.run()
    assert not at.exception
    picker = at.sidebar.selectbox[0]
    assert set(picker.options) >= {"alpha", "beta"}
    at.switch_page("studio/pages/runs.py").run()
    assert not at.exception
    df = at.dataframe[0].value
    assert set(df["run"]) == {"alpha", "beta"}
    assert df.set_index("run").loc["alpha", "task"] == "sentiment"


def _framed(at) -> bool:
    """The frame's sidebar is drawn: the run picker and the link to the Runs page."""
    pickers = [s for s in at.sidebar.selectbox if s.label == "Current run"]
    return bool(pickers) and any(sh.value == "Run" for sh in at.sidebar.subheader)


def test_every_page_runs_inside_the_frame_and_after_a_reload(app, runs):
    """The pages live in studio/pages/ (not a top-level pages/ folder), so Streamlit never
    runs one without streamlit_app.py: every page, and every rerun of it, has the frame."""
    runs.task("alpha")
    titles = {"studio/pages/model.py": "Model", "studio/pages/task.py": "Task",
              "studio/pages/synthesize.py": "Synthesize", "studio/pages/filter.py": "Filter",
              "studio/pages/finetune.py": "Finetune", "studio/pages/compare.py": "Compare",
              "studio/pages/runs.py": "Runs"}
    for page, title in titles.items():
        at = app()
        at.query_params["run"] = "alpha"  # a deep link: /<page>?run=alpha
        at.switch_page(page).run()
        for attempt in ("open", "reload"):
            assert not at.exception, (page, attempt, at.exception)
            assert at.title[0].value == title, (page, attempt)
            assert _framed(at), (page, attempt)
            assert at.session_state[state.RUN_KEY] == "alpha", (page, attempt)
            at.run()  # a rerun of the same page (what a refresh re-executes)


def test_a_page_started_on_its_own_runs_inside_the_frame(app, runs):
    """``AppTest.from_file`` on a page (as ``streamlit run studio/pages/task.py`` would):
    the page brings up the frame with itself selected, also on a rerun."""
    from streamlit.testing.v1 import AppTest

    runs.task("alpha")
    app()  # the fixture clears the caches and isolates the workspace
    for name, title in (("task", "Task"), ("synthesize", "Synthesize"), ("runs", "Runs")):
        at = AppTest.from_file(str(PAGES_DIR / f"{name}.py"),
                               default_timeout=60)
        at.query_params["run"] = "alpha"
        at.run()
        for attempt in ("open", "reload"):
            assert not at.exception, (name, attempt, at.exception)
            assert [t.value for t in at.title] == [title], (name, attempt)
            assert _framed(at), (name, attempt)
            at.run()
