"""Opening a page's own address (a bookmark, a shared link, a browser refresh) shows that
page inside the studio's frame: the navigation and the sidebar's run picker are there, and
the run in the address is the current one."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e]

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def test_deep_link_and_refresh_keep_the_frame(browser_page, studio, artifacts):
    from selfguide.runs import store
    url, ws = studio
    store.resolve_run_dir("linked", ws, create=True)
    page = browser_page
    for attempt in ("open", "refresh"):
        if attempt == "open":
            page.goto(url + "/task?run=linked")
        else:
            page.reload()
        sidebar = page.locator("[data-testid='stSidebar']")
        # the frame's own sidebar (not a legacy multipage file list) must come up
        sidebar.get_by_text("Current run").wait_for(timeout=60_000)
        page.wait_for_selector(IDLE, timeout=60_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts / f"deeplink-{attempt}.png"), full_page=True)
        assert sidebar.get_by_role("link", name="synthesize", exact=True).count() == 0, attempt
        assert sidebar.get_by_role("link", name="2 · Task").count() >= 1, attempt
        assert page.locator("h1").filter(has_text="Task").count() == 1, attempt
        # the run named in the address is the current one
        assert "into the current run linked" in page.locator("[data-testid='stMain']").inner_text()
        assert "/task" in page.url and "run=linked" in page.url, page.url
