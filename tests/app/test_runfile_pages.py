"""Issue 38 in the studio: a damaged run file is a page error that names the file (never an
exception), the Runs table lists a damaged run beside the others, and the Runs and Compare
pages show an evaluation that is stale."""

from __future__ import annotations

import json

PREDS = [{"id": "t0", "input": "Loved it.", "reference": "positive", "before": "negative",
          "after": "positive", "score_before": 0.0, "score_after": 1.0, "changed": True},
         {"id": "t1", "input": "Terrible.", "reference": "negative", "before": "negative",
          "after": "negative", "score_before": 1.0, "score_after": 1.0, "changed": False}]


def _errors(at) -> str:
    return "\n".join(e.value for e in at.error)


def test_compare_page_names_a_damaged_metrics_file(app, runs):
    d = runs.evaluated("r1", PREDS)
    (d / "eval" / "metrics.json").write_text("[1, 2]")
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception
    assert "Run 'r1': eval/metrics.json holds a list, not an object" in _errors(at)


def test_compare_page_names_cut_predictions(app, runs):
    d = runs.evaluated("r1", PREDS)
    p = d / "eval" / "predictions.jsonl"
    p.write_bytes(p.read_bytes()[:-10])
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception and "eval/predictions.jsonl is cut short" in _errors(at)


def test_filter_page_names_a_damaged_labelling_file(app, runs):
    d = runs.dataset("r1")
    (d / "labelling.json").write_text('{"protocol": ')
    at = app(run="r1")
    at.switch_page("studio/pages/filter.py").run()
    assert not at.exception and "labelling.json is not valid JSON" in _errors(at)


def test_runs_page_lists_a_damaged_run_beside_the_others(app, runs):
    runs.dataset("good")
    bad = runs.dataset("bad")
    (bad / "config.json").write_text('"just a string"')
    at = app()
    at.switch_page("studio/pages/runs.py").run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "run" in d.value.columns)
    status = dict(zip(table["run"], table["status"]))
    assert status["bad"].startswith("damaged: Run 'bad': config.json holds a string")
    assert not status["good"].startswith("damaged")


def test_stale_evaluation_on_compare_and_runs(app, runs):
    from selfguide.runs.rundir import RunDir

    d = runs.evaluated("r1", PREDS)
    run = RunDir(d)
    run.adapter_manifest_file.write_text(json.dumps({"kind": "lora", "created": 1.0}))
    m = json.loads(run.metrics_file.read_text())
    run.metrics_file.write_text(json.dumps({**m, "inputs": {"adapter": "an-older-one"}}))
    at = app(run="r1")
    at.switch_page("studio/pages/compare.py").run()
    assert not at.exception
    warn = "\n".join(w.value for w in at.warning)
    assert "This evaluation is stale: the adapter was retrained after this evaluation" in warn
    assert "selfguide eval --run r1" in warn
    at.switch_page("studio/pages/runs.py").run()
    table = next(d.value for d in at.dataframe if "run" in d.value.columns)
    assert table.loc[table["run"] == "r1", "stale"].item().startswith("eval: the adapter was")
