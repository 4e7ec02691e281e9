"""Shared test helpers (moved from tests/e2e/test_loop.py): goto, idle, metric, set_number, shot, wait_job."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

JOB_TIMEOUT_S = 900


def idle(page, timeout: float = 60_000) -> None:
    """Wait until the script run triggered by the last action has finished."""
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           timeout=timeout)


def goto(page, title: str) -> None:
    page.get_by_role("link", name=title).click()
    idle(page)
    page.get_by_role("heading", name=title.split("· ")[-1], exact=True, level=1).wait_for()


def set_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    idle(page)


def value(page, label: str) -> str:
    return page.get_by_label(label, exact=True).first.input_value()


def metric(page, label: str) -> str:
    m = page.locator("[data-testid='stMetric']").filter(
        has=page.locator("[data-testid='stMetricLabel']", has_text=re.compile(f"^{label}$")))
    return m.locator("[data-testid='stMetricValue']").inner_text().strip()


def wait_job(page, title: str, artifacts, name: str, jdir: Path) -> None:
    """Poll the job panel until the job ends; fail with the page's error, the job's
    status.json and the end of its log if it did not finish."""
    panel = page.locator("[data-testid='stMarkdownContainer']", has_text=f"{title} — job state")
    deadline = time.monotonic() + JOB_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        text = panel.first.inner_text() if panel.count() else ""
        m = re.search(r"job state: (\w+)", text)
        state = m.group(1) if m else ""
        silent = state == "interrupted" and page.get_by_text("keeps watching").count()
        if state in ("finished", "failed", "cancelled", "interrupted") and not silent:
            break  # (a silent worker, late heartbeat on a busy machine, may come back)
        page.wait_for_timeout(2000)
    page.wait_for_timeout(1500)  # the page reruns once when the job ends
    idle(page)
    if state != "finished":
        page.screenshot(path=str(artifacts / f"{name}-failed.png"), full_page=True)
        errors = page.locator("[data-testid='stAlertContentError']").all_inner_texts()
        on_disk = {f: (jdir / f).read_text(errors="replace")[-3000:]
                   for f in ("status.json", "log.txt") if (jdir / f).is_file()}
        pytest.fail(f"{title} ended as {state or 'unknown'}: {errors}\n{on_disk}")


def shot(page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)

