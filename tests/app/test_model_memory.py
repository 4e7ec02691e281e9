"""The Model page says, before "Load model", what the chosen model needs at the chosen
precision against the free memory, and that loading would fail when it does not fit."""

from __future__ import annotations

from sgtest.pages import button

from selfguide.models import memory
from studio.app import state


def test_model_page_shows_the_estimate_before_loading(app, monkeypatch, tiny_model_dir):
    monkeypatch.setenv(memory.MEMORY_ENV, "64e9")
    at = app()
    at.run()
    at.radio(key=state.widget_key("model", "source")).set_value("local").run()
    at.text_input(key=state.widget_key("model", "ref")).set_value(str(tiny_model_dir)).run()
    assert not at.exception
    texts = [c.value for c in at.caption]
    assert any(t.startswith("Memory: this model needs ~") and "64.0 GB available" in t
               for t in texts), texts
    monkeypatch.setenv(memory.MEMORY_ENV, "1e6")
    at.run()
    assert any("needs ~" in e.value and "Loading it would fail" in e.value and
               "Precision 4bit or 8bit" in e.value for e in at.error)
    button(at, "Load model").click().run()
    assert not at.exception and not at.metric  # refused before loading, in the page's words
    assert any("too large" in e.value for e in at.error)


def test_synthesize_start_is_off_while_the_model_does_not_fit(app, runs, monkeypatch):
    runs.task("r1")
    monkeypatch.setenv(memory.MEMORY_ENV, "1e6")
    at = app(run="r1")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    assert any("Loading it would fail" in e.value and "on the Model page" in e.value
               for e in at.error)
    assert button(at, "Start").disabled
    monkeypatch.setenv(memory.MEMORY_ENV, "64e9")
    at.run()
    assert not button(at, "Start").disabled and not at.error
    assert not any(c.value.startswith("Memory:") for c in at.caption)  # quiet when it fits
