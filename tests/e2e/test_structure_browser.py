"""The demos' input structure in a real browser (issue 39): the Task page states the template
the demos share, and the Filter page shows it with the structure slider, whose drop reason
and kept count follow the slider. The run is prepared on disk (no model), so this stays fast.
"""

from __future__ import annotations

import json

import pytest
from sgtest.tasks import NLI

pytestmark = [pytest.mark.e2e]

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def _prepare(ws):
    """A SELF-GUIDE run with both stages done: 12 candidates, every third without the
    hypothesis field."""
    import pandas as pd

    from selfguide.runs import store
    from selfguide.task.spec import TaskSpec

    d = store.resolve_run_dir("nli", ws, create=True)
    store.atomic_write_json(d / "task.json", TaskSpec.from_dict(NLI).to_dict())
    store.atomic_write_json(d / "config.json", {"method": "selfguide",
                                                "model": {"model": "embedded"}})
    rows = []
    for i in range(12):
        text = (f"Premise: Fact {i} holds. \n Hypothesis: Claim {i} follows." if i % 3
                else f"Premise: Fact {i} holds and nothing else is said here.")
        label = "entails" if i % 2 else "neutral"
        rows.append({"id": f"c{i:03d}", "method": "selfguide", "round": 0, "prompt_id": i,
                     "target_label": label, "raw": text, "input": text,
                     "samples": [label] * 5, "votes": json.dumps({label: 5}),
                     "vote_share": 1.0, "output": label, "label_vote": label, "label": label})
    pd.DataFrame(rows).to_parquet(d / "candidates.parquet")
    return d


def idle(page):
    page.wait_for_timeout(400)
    page.wait_for_selector(IDLE, timeout=60_000)


def _kept(page) -> int:
    m = page.locator("[data-testid='stMetric']").filter(has_text="Kept").first
    return int(m.locator("[data-testid='stMetricValue']").inner_text().strip())


def test_template_on_task_page_and_structure_filter_on_filter_page(browser_page, studio,
                                                                    artifacts):
    url, ws = studio
    _prepare(ws)
    page = browser_page
    try:
        page.goto(url + "/task?run=nli")
        page.get_by_role("heading", name="Task", exact=True, level=1).wait_for(timeout=60_000)
        idle(page)
        main = page.locator("[data-testid='stMain']")
        main.get_by_text("Input structure the demos share:").first.wait_for(timeout=30_000)
        text = main.inner_text()
        assert "Premise: … Hypothesis: …; 2 lines" in text, text[:2000]
        page.screenshot(path=str(artifacts / "structure-task.png"), full_page=True)

        page.goto(url + "/filter?run=nli")
        page.get_by_role("heading", name="Filter", exact=True, level=1).wait_for(timeout=60_000)
        idle(page)
        page.get_by_role("tab", name="Structure").click()
        idle(page)
        main.get_by_text("Template the demos share:").first.wait_for(timeout=30_000)
        assert "Premise: … Hypothesis: …; 2 lines" in main.inner_text()
        strict = _kept(page)
        assert strict <= 8, strict  # the 4 inputs without the hypothesis field are dropped
        assert main.get_by_text("Dropped for structure").count() >= 1
        page.screenshot(path=str(artifacts / "structure-filter.png"), full_page=True)
        slider = page.locator("[data-testid='stSlider']").filter(
            has_text="structure").get_by_role("slider").first
        slider.focus()
        slider.press("Home")  # 0: the share of the template an input must carry
        idle(page)
        assert _kept(page) > strict
        page.get_by_role("tab", name="Structure").click()
        idle(page)
        assert main.get_by_text("Dropped for structure").count() == 0
    except BaseException:
        page.screenshot(path=str(artifacts / "structure-failure.png"), full_page=True)
        raise
