"""Real-browser fixtures: a ``streamlit run`` server on a free loopback port with its own
workspace, and Debian's Chromium driven by Playwright (never ``playwright install``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def pytest_collection_modifyitems(config, items):
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} not found: install Debian's chromium "
                                   "(apt-get install -y chromium) to run the browser tests")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    d = Path(os.environ.get("E2E_ARTIFACTS") or REPO / "tests" / "e2e" / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture()
def studio(tmp_path, artifacts):
    """``(url, workspace)`` of a fresh studio server; stopped (with its jobs) afterwards."""
    ws = tmp_path / "ws"
    ws.mkdir()
    port = _free_port()
    env = {**os.environ, "SELFGUIDE_WORKSPACE": str(ws), "PYTHONUNBUFFERED": "1",
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log = open(artifacts / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port",
         str(port), "--server.headless", "true"], cwd=REPO, env=env, stdout=log,
        stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}; see "
                                   f"{artifacts / 'server.log'}")
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("streamlit did not become healthy within 60 s")
            time.sleep(0.5)
        yield url, ws
    finally:
        _stop_jobs(ws, env)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _stop_jobs(ws: Path, env: dict) -> None:
    """Cancel any job the studio started (they run in their own process groups)."""
    old = os.environ.get("SELFGUIDE_WORKSPACE")
    os.environ["SELFGUIDE_WORKSPACE"] = str(ws)
    try:
        from selfguide import jobs
        from selfguide.runs import store
        for run in store.list_runs():
            for j in jobs.list_jobs(run):
                if j.active:
                    jobs.cancel(run, j.stage)
    finally:
        if old is None:
            os.environ.pop("SELFGUIDE_WORKSPACE", None)
        else:
            os.environ["SELFGUIDE_WORKSPACE"] = old


@pytest.fixture()
def browser_page(studio):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.dialogs = dialogs  # type: ignore[attr-defined]
            yield page
        finally:
            browser.close()
