"""The Task page's demonstrations grid in a real browser: a cell edited and committed with
Enter is kept, the second edit as well as the first (issue 15, item 3)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = [pytest.mark.e2e]

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
RUNNING = "[data-testid='stApp'][data-test-script-state='running']"
ROW_H = 35  # Streamlit's default grid row (and header) height in pixels


def idle(page) -> None:
    page.wait_for_timeout(400)
    page.wait_for_selector(IDLE, timeout=60_000)


def cell(grid, row: int, col: int):
    """The accessible cell the grid keeps beside its canvas (row 0 = first data row)."""
    return grid.locator("td").nth(row * 2 + col)


def edit_cell(page, grid, row: int, col_x: float, text: str) -> None:
    """Select the cell (row 0 = first data row), type over it, commit with Enter."""
    box = grid.bounding_box()
    page.mouse.click(box["x"] + col_x, box["y"] + ROW_H * (row + 1) + ROW_H / 2)
    page.wait_for_timeout(300)
    page.keyboard.type(text[0])  # a key on a selected cell opens its editor, replacing it
    page.locator("#portal textarea, #portal input").first.wait_for(timeout=5_000)
    page.keyboard.type(text[1:], delay=20)
    page.wait_for_timeout(400)  # let the editor take the text before Enter commits it
    page.keyboard.press("Enter")
    rerun(page)


def rerun(page) -> None:
    """Wait for the script run an edit triggers to start, then to end."""
    try:
        page.wait_for_selector(RUNNING, timeout=3_000)
    except PlaywrightTimeout:
        pass  # it may have come and gone already
    idle(page)
    page.wait_for_timeout(500)


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
    cell(grid, 3, 1).wait_for(state="attached", timeout=10_000)  # all four rows are drawn
    page.wait_for_timeout(1000)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    out_x = box["width"] - 40  # inside the last (output) column
    edit_cell(page, grid, 0, out_x, "negative")
    assert cell(grid, 0, 1).inner_text() == "negative"
    edit_cell(page, grid, 1, out_x, "positive")
    shown = [cell(grid, r, 1).inner_text() for r in range(2)]
    assert shown == ["negative", "positive"], shown  # the grid still shows both edits
    page.screenshot(path=str(artifacts / "task-grid.png"), full_page=True)
    page.get_by_role("button", name="Save task to run").click()
    idle(page)
    page.get_by_text("saved to run").wait_for()
    saved = json.loads((ws / "runs" / "sentiment" / "task.json").read_text())
    outs = [d["output"] for d in saved["demos"]]
    assert outs[:2] == ["negative", "positive"], outs
