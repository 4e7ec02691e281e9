"""A method registered from outside ``selfguide/`` gets the Synthesize and Filter pages
through the registry: its picker entry, a settings form from its config, its job's command
line, and a Filter view of its candidates (the generic studio parts)."""

from __future__ import annotations

import dataclasses

from studio.app import state


def test_synthesize_page_offers_the_plugin_method_and_starts_its_job(app, workspace, runs,
                                                                     toy_method, job_recorder):
    runs.task("toy")
    at = app(run="toy")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception, at.exception
    radio = at.radio(key=state.widget_key("synth", "method"))
    assert "toymethod" in radio.options or "Toy method: numbered rows, no model" in radio.options
    radio.set_value("toymethod").run()
    assert not at.exception, at.exception
    assert any("toy method writes numbered rows" in c.value for c in at.caption)
    count = next(w for w in at.number_input if "toy rows" in (w.help or ""))
    count.set_value(3).run()
    next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception, at.exception
    stage, argv = job_recorder.calls[-1][1], job_recorder.calls[-1][2]
    assert stage == "toy-synth"
    assert argv[:1] == ["synthesize"] and argv[-2:] == ["--method", "toymethod"]
    assert "--count" in argv and argv[argv.index("--count") + 1] == "3"


def test_filter_page_shows_the_plugin_methods_candidates(app, workspace, toy_method):
    from selfguide.runs import store

    run_dir = store.resolve_run_dir("toy", create=True)
    toy_method.run(run_dir, toy_method.synthesis_config(count=4), toy_method.filter_config())
    at = app(run="toy")
    at.switch_page("studio/pages/filter.py").run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Candidates"] == "4"
    saved = dataclasses.asdict(toy_method.saved_filters(run_dir))
    assert saved == {"min_chars": 0}
