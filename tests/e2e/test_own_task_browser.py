"""A user's own task in a real browser (issue 40's acceptance, with the synthesis and
training done beforehand on the tiny model to spare a 2-core CPU): a three-label task with
three demos and no held-out rows reaches a before/after view (the label-free comparison),
then five held-out rows imported on the Task page give the labelled comparison; nothing on
the way shows a raw ``None``, a Python repr, or a message about other data."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sgtest.browser import goto, idle, metric, set_number, shot, wait_job
from sgtest.tasks import TICKETS

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]

LABELS = TICKETS["labels"]
BAD = ("None", "np.float64", "array(", "Traceback", "No held-out examples")


def _prepare(ws, model_dir, monkeypatch) -> None:
    """What Synthesize and Finetune would have written: the task (no held-out rows), a
    dataset, candidates the filters dropped, and a trained adapter (tiny model)."""
    from selfguide import cli
    from selfguide.runs import store
    from selfguide.task.prompts import task_prompt
    from selfguide.task.spec import TaskSpec

    monkeypatch.setenv("SELFGUIDE_WORKSPACE", str(ws))
    run = store.resolve_run_dir("tickets", ws, create=True)
    task = TaskSpec.from_dict(TICKETS)
    store.atomic_write_json(run / "task.json", task.to_dict())
    store.atomic_write_json(run / "config.json", {"method": "selfguide",
                                                  "model": {"model": str(model_dir)}})
    recs = []
    for i in range(18):
        lab = LABELS[i % 3]
        inp = f"{lab} ticket number {i}"
        recs.append({"id": f"r{i}", "prompt": task_prompt(task, inp), "completion": lab,
                     "input": inp, "output": lab, "label": lab})
    store.atomic_write_text(run / "dataset" / "train.jsonl",
                            "".join(json.dumps(r) + "\n" for r in recs))
    rows = [{"id": r["id"], "input": r["input"], "kept": True} for r in recs]
    rows += [{"id": f"d{i}", "input": f"a dropped ticket {i}", "kept": False}
             for i in range(12)]
    pd.DataFrame(rows).to_parquet(run / "candidates.parquet")
    assert cli.main(["train", "--run", "tickets", "--method", "lora", "--precision", "fp32",
                     "--epochs", "1", "--batch-size", "6", "--grad-accum", "1",
                     "--val-fraction", "0"]) == 0


def _text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()


def test_own_task_unlabeled_then_labelled_comparison(browser_page, studio, artifacts,
                                                     tiny_model_dir, monkeypatch, tmp_path):
    url, ws = studio
    _prepare(ws, tiny_model_dir, monkeypatch)
    page = browser_page
    page.goto(url + "/compare?run=tickets")
    idle(page)
    page.get_by_role("heading", name="Compare", exact=True, level=1).wait_for()
    text = _text(page)
    assert "no held-out rows with expected outputs" in text and "12 not kept" in text
    page.get_by_role("heading", name="Try both models").wait_for()  # before any evaluation
    set_number(page, "max new tokens", 3)
    page.get_by_role("button", name="Evaluate before / after").click()
    idle(page)
    wait_job(page, "Evaluation job", artifacts, "own-unlabeled",
             ws / "runs" / "tickets" / "jobs" / "eval")
    page.get_by_role("heading", name="Base vs tuned, without labels").wait_for()
    assert metric(page, "Inputs") == "12"
    assert metric(page, "Agreement").endswith("%")
    text = _text(page)
    assert "ollapse" in text  # the verdict, either way, in plain words
    assert not [b for b in BAD if b in text], [b for b in BAD if b in text]
    shot(page, artifacts, "own-1-unlabeled")

    # Five held-out rows, imported on the Task page, saved into the same run.
    rows = tmp_path / "held.csv"
    rows.write_text("input,output\n" + "".join(
        f"held-out {lab} question {i},{lab}\n"
        for i, lab in enumerate(["billing", "technical", "other", "billing", "other"])))
    goto(page, "2 · Task")
    page.get_by_text("Import held-out rows from a file").click()
    idle(page)
    page.locator("[data-testid='stExpander']").filter(
        has_text="Import held-out rows from a file").locator(
        "input[type='file']").set_input_files(str(rows))  # not the intake's uploaders below
    idle(page)
    page.get_by_role("button", name="Add these held-out rows").click()
    idle(page)
    page.get_by_text("saving updates them there").wait_for()
    page.get_by_role("button", name="Save task to run").click()
    idle(page)
    page.get_by_text("This task is the one saved in the current run").wait_for()
    saved = json.loads((ws / "runs" / "tickets" / "task.json").read_text())
    assert len(saved["test"]) == 5 and len(saved["demos"]) == 3
    shot(page, artifacts, "own-2-task")

    goto(page, "6 · Compare")
    assert "Evaluates on 5 held-out rows" in _text(page)
    page.get_by_text("Evaluation settings").click()  # folded once an evaluation exists
    idle(page)
    set_number(page, "max new tokens", 3)
    page.get_by_role("button", name="Evaluate before / after").click()
    idle(page)
    wait_job(page, "Evaluation job", artifacts, "own-labelled",
             ws / "runs" / "tickets" / "jobs" / "eval")
    page.get_by_role("heading", name="Scores").wait_for()
    assert metric(page, "Examples") == "5"
    text = _text(page)
    assert not [b for b in BAD if b in text], [b for b in BAD if b in text]
    shot(page, artifacts, "own-3-labelled")
    assert page.dialogs == []  # no alert() from any rendered text
