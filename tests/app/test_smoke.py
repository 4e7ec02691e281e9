"""Every page renders from a cold start without an exception, and explains what to do."""

from __future__ import annotations

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
