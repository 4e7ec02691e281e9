"""The Task page's demonstrations grid in a real browser: a cell edited and committed with
Enter is kept, the second edit as well as the first (issue 15, item 3)."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.e2e]

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
ROW_H = 35  # Streamlit's default grid row (and header) height in pixels


def idle(page) -> None:
    page.wait_for_timeout(400)
    page.wait_for_selector(IDLE, timeout=60_000)


def edit_cell(page, grid, row: int, col_x: float, text: str) -> None:
    """Open the cell (row 0 = first data row) with a double click, type, commit with Enter."""
    box = grid.bounding_box()
    page.mouse.dblclick(box["x"] + col_x, box["y"] + ROW_H * (row + 1) + ROW_H / 2)
    page.wait_for_timeout(300)
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    idle(page)


def test_grid_keeps_each_edit_committed_with_enter(browser_page, studio, artifacts):
    url, ws = studio
    page = browser_page
    page.goto(url + "/task")
    idle(page)
    page.get_by_role("heading", name="Task", exact=True, level=1).wait_for()
    page.get_by_role("button", name="Load example").click()
    idle(page)
    page.get_by_text("Valid task").wait_for()
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    out_x = box["width"] - 40  # inside the last (output) column
    edit_cell(page, grid, 0, out_x, "negative")
    edit_cell(page, grid, 1, out_x, "positive")
    page.screenshot(path=str(artifacts / "task-grid.png"), full_page=True)
    page.get_by_role("button", name="Save task to run").click()
    idle(page)
    page.get_by_text("saved to run").wait_for()
    saved = json.loads((ws / "runs" / "sentiment" / "task.json").read_text())
    outs = [d["output"] for d in saved["demos"]]
    assert outs[:2] == ["negative", "positive"], outs
