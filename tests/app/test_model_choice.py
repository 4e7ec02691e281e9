"""The model chosen on the Model page travels with the studio's jobs as ``selfguide run
--model/--precision/--chat`` passes it: synthesis gets the options and records them, and the
Finetune and Compare pages say which model the run trains and evaluates (issue 35)."""

from __future__ import annotations

from sgtest.pages import button

from studio.app import state


def choose_model(at, path, precision="fp32", chat=False):
    at.radio(key=state.widget_key("model", "source")).set_value("local").run()
    at.text_input(key=state.widget_key("model", "ref")).set_value(str(path)).run()
    at.selectbox(key=state.widget_key("model", "precision")).set_value(precision).run()
    at.checkbox(key=state.widget_key("model", "chat")).set_value(chat).run()
    assert not at.exception


def test_synthesis_job_gets_the_model_precision_and_chat(app, runs, job_recorder,
                                                         tiny_model_dir):
    from selfguide.cli import build_parser
    from selfguide.settings.fields import ModelConfig, from_dict, overrides_from_args

    runs.task("r1")
    at = app(run="r1")
    at.run()
    choose_model(at, tiny_model_dir)
    at.switch_page("studio/pages/synthesize.py").run()
    assert any(f"Model: **{tiny_model_dir}** (fp32)" in c.value for c in at.caption)
    button(at, "Start").click().run()
    assert not at.exception
    [(run, stage, argv)] = job_recorder.calls
    assert (run, stage) == ("r1", "synthesize")
    args = build_parser().parse_args(argv)
    cfg = from_dict(ModelConfig, overrides_from_args(args, ModelConfig))
    assert (cfg.model, cfg.precision, cfg.chat) == (str(tiny_model_dir), "fp32", False)


def test_finetune_and_compare_name_the_runs_model(app, runs, tiny_model_dir):
    d = runs.dataset("r1")  # synthesized with the embedded model
    (d / "adapter").mkdir()
    at = app(run="r1")
    at.run()
    for page in ("finetune", "compare"):
        at.switch_page(f"studio/pages/{page}.py").run()
        assert not at.exception
        assert any(c.value.startswith("Model: **embedded**") and "chat template" in c.value
                   for c in at.caption), page
        assert not any("Model page now has" in w.value for w in at.warning)
    at.switch_page("studio/pages/model.py").run()
    choose_model(at, tiny_model_dir)
    for page in ("finetune", "compare"):
        at.switch_page(f"studio/pages/{page}.py").run()
        assert any("Model page now has" in w.value and str(tiny_model_dir) in w.value
                   and "new run" in w.value for w in at.warning), page


def test_synthesize_warns_when_the_run_was_made_with_another_model(app, runs, tiny_model_dir):
    runs.candidates("r1")  # generated with the embedded model
    at = app(run="r1")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    assert not any("A run keeps one model" in w.value for w in at.warning)
    at.switch_page("studio/pages/model.py").run()
    choose_model(at, tiny_model_dir, precision="fp32", chat=True)
    at.switch_page("studio/pages/synthesize.py").run()
    [warning] = [w.value for w in at.warning if "A run keeps one model" in w.value]
    assert "**embedded** (auto, chat on)" in warning and "(fp32, chat on)" in warning
    assert "Discard data generated earlier" in warning and "new run" in warning
