"""Filter page on a Self-Instruct run: instance filters re-apply live, pool filters stay
fixed, overrides and saving go through the Self-Instruct pipeline."""

from __future__ import annotations

from sgtest.selfinstruct_runs import WORDS, fake_model, make_si_run  # noqa: F401

from selfguide.runs import store
from studio.app import state


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_selfinstruct_filter_page(app, workspace):
    d = make_si_run(workspace)
    at = app(run="si")
    at.switch_page("studio/pages/filter.py").run()
    assert not at.exception, at.exception
    kept = int(metric(at, "Kept"))
    assert kept > 0 and int(metric(at, "Instructions")) >= 3
    # Instance thresholds re-apply without generating: outputs of <= 7 words only.
    at.number_input(key=state.widget_key("sifilter.si", "max_output_words")).set_value(7).run()
    assert not at.exception
    strict = int(metric(at, "Kept"))
    assert 0 < strict < kept
    # Pool filters are shown, not editable (changing them needs a new run).
    labels = {w.label for w in (*at.number_input, *at.slider, *at.text_area)}
    assert "rouge threshold" not in labels and "max output words" in labels
    next(b for b in at.button if b.label == "Save dataset").click().run()
    assert not at.exception
    assert len(store.read_jsonl(d / "dataset" / "train.jsonl")) == strict
    saved = store.read_json(d / "config.json")["filters"]
    assert saved["max_output_words"] == 7


def test_selfinstruct_start_and_preview(app, workspace, job_recorder):
    from selfguide.cli import build_parser

    make_si_run(workspace)
    at = app(run="si")
    at.switch_page("studio/pages/synthesize.py").run()
    at.radio(key=state.widget_key("synth", "method")).set_value("selfinstruct").run()
    assert not at.exception
    labels = {w.label for w in at.slider}
    assert "rouge threshold" in labels  # the pool filters are set before generating
    at.slider(key=state.widget_key("synth.sifilter", "rouge_threshold")).set_value(0.5).run()
    next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception
    run, stage, argv = job_recorder.calls[0]
    assert (run, stage) == ("si", "self-instruct") and argv[:3] == ["self-instruct", "--run",
                                                                   "si"]
    args = build_parser().parse_args(argv)
    assert float(args.rouge_threshold) == 0.5
    # The finished run's rounds show up newest first.
    preview = next(d.value for d in at.dataframe if "accepted" in d.value.columns)
    assert len(preview) >= 3 and preview["round"].iloc[0] >= preview["round"].iloc[-1]
