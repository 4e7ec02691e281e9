"""The server-side upload limit holds in a real browser (RELIABILITY.md #6): a file over
``server.maxUploadSize`` (50 MB) is refused by the page, never reaches the app (no import
is offered), and the server's memory does not grow by the file's size."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e]


def test_upload_over_limit_is_refused(browser_page, studio, tmp_path, artifacts):
    import psutil

    url, ws = studio
    big = tmp_path / "huge.json"
    with open(big, "wb") as fh:  # 60 MB of valid-looking JSON, above the 50 MB limit
        fh.write(b'{"instruction": "' + b"x" * (60 * 1024 * 1024) + b'"}')
    page = browser_page
    page.goto(url + "/task")
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           timeout=60_000)
    page.get_by_role("tab", name="Import a file").click()
    server = next(p for p in psutil.process_iter(["cmdline"])
                  if p.info["cmdline"] and "streamlit_app.py" in " ".join(p.info["cmdline"])
                  and str(ws) in str(p.environ().get("SELFGUIDE_WORKSPACE", "")))
    rss_before = server.memory_info().rss
    # the task file's uploader (the Import tab), not the held-out rows' one below it
    page.get_by_test_id("stTabs").locator(
        "[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(big))
    page.get_by_text("File must be 50.0MB or smaller").wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(artifacts / "upload-over-limit.png"), full_page=True)
    assert page.get_by_role("button", name="Import").count() == 0
    assert server.memory_info().rss - rss_before < 20 * 1024 * 1024
    assert not any(ws.rglob("*.json")), "nothing may be written for a refused upload"
