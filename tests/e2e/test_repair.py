"""Row repair in a real browser (issue 15): correct a candidate's output in the Filter
page's table, save the dataset, and find the correction in the training record. The run is
prepared on disk (no model), so this stays fast."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = [pytest.mark.e2e]

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
TASK = {
    "name": "titles", "task_type": "generation", "metric": "rouge_l",
    "instruction": "Write a short title for the news text.",
    "examples": [{"input": f"The city council met on day {i} to talk about parks and roads.",
                  "output": f"Council talks parks on day {i}"} for i in range(4)],
}


def _prepare(ws):
    """A SELF-GUIDE generation run with both stages done: 6 candidates, all kept."""
    import pandas as pd

    from selfguide.runs import store
    from selfguide.task.spec import TaskSpec

    d = store.resolve_run_dir("rep", ws, create=True)
    store.atomic_write_json(d / "task.json", TaskSpec.from_dict(TASK).to_dict())
    store.atomic_write_json(d / "config.json", {"method": "selfguide",
                                                "model": {"model": "embedded"}})
    topics = ["schools", "bridges", "markets", "rivers", "trains", "museums"]
    rows = []
    for i, t in enumerate(topics):
        out = f"Council plans new {t} soon"
        rows.append({"id": f"c{i}", "method": "selfguide", "round": 0, "prompt_id": i,
                     "target_label": "", "raw": "", "samples": [out] * 3,
                     "input": f"The mayor said the town will build {t} for families next year.",
                     "votes": json.dumps({out: 3}), "vote_share": 1.0, "output": out,
                     "label_vote": "", "label_scores": None})
    pd.DataFrame(rows).to_parquet(d / "candidates.parquet")
    return d


def idle(page):
    page.wait_for_timeout(400)
    page.wait_for_selector(IDLE, timeout=60_000)


def test_edit_in_the_table_reaches_the_training_record(browser_page, studio, artifacts):
    from selfguide.runs import store
    url, ws = studio
    d = _prepare(ws)
    page = browser_page
    page.goto(url + "/filter?run=rep")
    page.get_by_role("heading", name="Filter", exact=True, level=1).wait_for(timeout=60_000)
    idle(page)
    grid = page.locator("[data-testid='stDataFrame']").last
    grid.scroll_into_view_if_needed()
    canvas = grid.locator("canvas").first
    box = canvas.bounding_box()
    # first data row (below the 35 px header), first column (decision), then to 'output'
    page.mouse.click(box["x"] + 30, box["y"] + 35 + 17)
    page.wait_for_timeout(300)
    cols = ["decision", "edited", "kept", "drop_reason", "input", "output"]  # no label:
    # a generation task's label column is empty, so the table leaves it out
    for _ in range(cols.index("output")):
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts / "repair-selected.png"), full_page=True)
    page.keyboard.press("Enter")  # open the cell editor on the selected cell
    editor = page.locator("[data-testid='glide-cell-editor'] textarea, "
                          "#portal textarea").first
    editor.wait_for(timeout=10_000)
    editor.fill("A corrected title by hand")
    page.keyboard.press("Enter")  # commit the cell
    idle(page)
    page.wait_for_timeout(800)
    idle(page)
    page.screenshot(path=str(artifacts / "repair-edited.png"), full_page=True)
    fixes = {k: v for k, v in store.read_json(d / "overrides.json", default={}).items()
             if isinstance(v, dict) and "output" in v}
    assert list(fixes) == ["c0"], store.read_json(d / "overrides.json", default={})
    assert fixes["c0"]["output"] == "A corrected title by hand"
    assert fixes["c0"]["original"]["output"] == "Council plans new schools soon"
    page.get_by_role("button", name="Save dataset").click()
    idle(page)
    page.get_by_text(re.compile(r"Saved \d+ (training )?rows")).first.wait_for(timeout=30_000)
    recs = store.read_jsonl(d / "dataset" / "train.jsonl") + \
        store.read_jsonl(d / "dataset" / "val.jsonl")
    rec = {r["id"]: r for r in recs}["c0"]
    assert rec["completion"] == rec["output"] == "A corrected title by hand"
    page.screenshot(path=str(artifacts / "repair-saved.png"), full_page=True)
