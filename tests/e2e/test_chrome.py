"""Offline chrome in a real browser (issue 15, item 8): the studio fetches nothing from
outside the machine (the favicon is a local file) and the toolbar has no "Deploy" button."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

pytestmark = [pytest.mark.e2e]

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def test_no_external_fetch_and_no_deploy_button(browser_page, studio, artifacts):
    url, _ = studio
    page = browser_page
    hosts: list[str] = []
    page.on("request", lambda r: hosts.append(urlparse(r.url).hostname or ""))
    page.goto(url)
    page.get_by_role("heading", name="Model", exact=True, level=1).wait_for(timeout=60_000)
    page.wait_for_selector(IDLE, timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts / "chrome.png"))
    outside = sorted({h for h in hosts if h not in ("127.0.0.1", "localhost", "")})
    assert outside == [], outside
    icon = page.locator("link[rel~='icon']").first.get_attribute("href") or ""
    assert urlparse(icon).hostname in (None, "127.0.0.1", "localhost"), icon
    assert page.get_by_role("button", name="Deploy").count() == 0
    assert page.get_by_text("Deploy", exact=True).count() == 0
