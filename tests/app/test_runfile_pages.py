"""Issue 38 in the studio: a damaged run file is a page error that names the file (never an
exception), the Runs table lists a damaged run beside the others, and the Runs and Compare
pages show an evaluation that is stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


DAMAGED = {"config.json": "[1]", "manifest.json": '{"stages": []}', "task.json": "[]",
           "labelling.json": '{"protocol": ', "dataset/report.json": '{"train": "x"}',
           "dataset/train.jsonl": '{"id": "cut', "train/train_config.json": "[]",
           "train/metrics.json": '{"rows": "3"}', "eval/metrics.json": "7",
           "eval/predictions.jsonl": "[]\n", "overrides.json": "[]"}
PAGES = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "studio" / "pages")
               .glob("*.py"))


@pytest.mark.parametrize("rel", sorted(DAMAGED))
def test_every_page_survives_each_damaged_file(app, runs, rel):
    """Every page, with one run file damaged: no exception; where the page reads that file,
    its error names it."""
    d = runs.evaluated("r1", PREDS)
    (d / rel).parent.mkdir(parents=True, exist_ok=True)
    (d / rel).write_text(DAMAGED[rel])
    at = app(run="r1")
    at.run()
    named = []
    for page in PAGES:
        at.switch_page(f"studio/pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        for err in at.error:
            if "Run 'r1'" in err.value:
                assert rel in err.value, (page, err.value)
                named.append(page)
        for df in (d.value for d in at.dataframe if "status" in d.value.columns):
            if any(f"damaged: Run 'r1': {rel}" in str(v) for v in df["status"]):
                named.append(page)  # the Runs table: the damaged run's row says which file
    assert named, f"no page named the damaged {rel}"
