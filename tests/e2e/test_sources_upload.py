"""Issue 36 in a real browser: on the Synthesize page, "Use my inputs" with a dropped CSV
shows the column picker, a preview and how many inputs the file gives; nothing is started."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.e2e]

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
TASK = {"name": "sent", "instruction": "Is the review positive or negative?",
        "task_type": "classification", "labels": ["positive", "negative"],
        "demos": [{"input": "I loved it", "output": "positive"},
                  {"input": "Awful and slow", "output": "negative"},
                  {"input": "A charming film", "output": "positive"}]}


def test_upload_inputs_preview_and_counts(browser_page, studio, artifacts, tmp_path):
    from selfguide.runs import store

    url, ws = studio
    run = store.resolve_run_dir("mine", ws, create=True)
    store.atomic_write_json(run / "task.json", TASK)
    csv = tmp_path / "tickets.csv"
    csv.write_text("id,review\n" + "".join(f"{i},the film number {i} was a long ride\n"
                                           for i in range(30)))
    page = browser_page
    page.goto(url + "/synthesize?run=mine")
    page.wait_for_selector(IDLE, timeout=60_000)
    page.get_by_text("Settings", exact=True).first.wait_for(timeout=60_000)
    page.get_by_text("Use my inputs").click()
    # the inputs' uploader once the rerun has drawn it (not the documents' one)
    uploader = page.locator("[data-testid='stFileUploader']").filter(
        has_text="Your inputs (CSV")
    uploader.wait_for(timeout=60_000)
    page.wait_for_selector(IDLE, timeout=60_000)
    uploader.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(csv))
    page.get_by_text("Your file gives 30 inputs").wait_for(timeout=60_000)
    page.wait_for_selector(IDLE, timeout=60_000)
    main = page.locator("[data-testid='stMain']").inner_text()
    page.screenshot(path=str(artifacts / "given-inputs.png"), full_page=True)
    assert "nothing is generated" in main and "Column with the input text" in main
    assert not list((ws / "runs" / "mine").glob("jobs/*/status.json"))  # nothing started
    assert [p.suffix for p in (run / "uploads").iterdir()] == [".csv"]
    assert json.loads((run / "task.json").read_text())["name"] == "sent"
