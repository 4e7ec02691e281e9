"""The demos' input structure in the studio (issue 39): the Task page states it, the
Synthesize page repeats it, and the Filter page has its slider, tab and drop reason."""

from __future__ import annotations

import json

from sgtest.tasks import NLI

from studio.app import state


def _texts(at) -> str:
    els = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.success]
    return "\n".join(str(e.value) for e in els)


def _nli_candidates(run_dir, n: int = 12) -> None:
    import pandas as pd

    rows = []
    for i in range(n):
        structured = i % 3 != 0  # every third input lost the hypothesis field
        text = (f"Premise: Fact {i} holds. \n Hypothesis: Claim {i} follows." if structured
                else f"Premise: Fact {i} holds and nothing else is said here.")
        label = "entails" if i % 2 else "neutral"
        rows.append({"id": f"c{i:03d}", "method": "selfguide", "round": 0, "prompt_id": i,
                     "target_label": label, "raw": text, "input": text,
                     "samples": [label] * 5, "votes": json.dumps({label: 5}), "vote_share": 1.0,
                     "output": label, "label_vote": label, "label": label})
    pd.DataFrame(rows).to_parquet(run_dir / "candidates.parquet")


def test_task_page_states_the_structure_the_demos_share(app, runs):
    runs.task("nli", NLI)
    at = app(run="nli")
    at.switch_page("studio/pages/task.py").run()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "Input structure the demos share:** Premise: … Hypothesis: …; 2 lines" in text
    assert "starts with **Premise:**" in text


def test_synthesize_page_repeats_it(app, runs):
    runs.task("nli", NLI)
    at = app(run="nli")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception, at.exception
    assert "Premise: … Hypothesis: …" in _texts(at)


def test_filter_page_structure_slider_tab_and_reason(app, runs):
    d = runs.task("nli", NLI)
    _nli_candidates(d)
    at = app(run="nli")
    at.switch_page("studio/pages/filter.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Candidates"] == "12"
    kept = int(metrics["Kept"])
    assert "Template the demos share: **Premise: … Hypothesis: …; 2 lines**" in _texts(at)
    assert any("Dropped for structure" in m.value for m in at.markdown)
    # Loosening the structure filter to 0 keeps the inputs that lost a field.
    at.slider(key=state.widget_key("filter.nli", "min_structure")).set_value(0.0).run()
    assert not at.exception, at.exception
    assert int({m.label: m.value for m in at.metric}["Kept"]) > kept
