"""Fixtures for the studio's AppTest tests: an app factory on an isolated workspace, a
recorder that replaces job launching, and prepared run directories written by the tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "streamlit_app.py"

SENTIMENT = {
    "name": "sentiment",
    "instruction": "Classify the sentiment of the movie review as positive or negative.",
    "task_type": "classification",
    "labels": ["positive", "negative"],
    "metric": "exact_match",
    "examples": [
        {"input": "A wonderful film with a great cast.", "output": "positive"},
        {"input": "Boring, too long and badly acted.", "output": "negative"},
        {"input": "I smiled from start to finish.", "output": "positive"},
    ],
    "test": [{"input": "Terrible plot.", "output": "negative"},
             {"input": "Loved it.", "output": "positive"}],
}

WORDS = ["the", "movie", "plot", "actors", "music", "scenes", "story", "film", "ending", "was", "very", "quite", "rather", "fun", "dull", "bright", "slow", "warm", "sharp"]


def candidates_frame(n: int = 40, seed: int = 0):
    """A candidates table shaped like the SELF-GUIDE pipeline's (both stages done)."""
    import pandas as pd

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 3 else "negative"
        k = rng.randint(3, 9)
        text = " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "."
        share = round(0.1 + 0.9 * i / max(1, n - 1), 2)
        samples = [label] * max(1, int(share * 5)) + ["neutral"] * (5 - max(1, int(share * 5)))
        rows.append({
            "id": f"c{i:03d}", "method": "selfguide", "round": i // 10, "prompt_id": i,
            "target_label": label, "raw": text, "input": text, "samples": samples,
            "votes": json.dumps({label: samples.count(label)}), "vote_share": share,
            "output": label, "label_vote": label, "label": label,
        })
    return pd.DataFrame(rows)


class RunBuilder:
    """Writes run directories the way the stage commands do."""

    def __init__(self, ws: Path):
        self.ws = ws

    def dir(self, name: str) -> Path:
        d = self.ws / "runs" / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def task(self, name: str, task: dict | None = None) -> Path:
        from selfguide.runs import store
        from selfguide.task.spec import TaskSpec

        d = self.dir(name)
        spec = TaskSpec.from_dict(task or SENTIMENT)
        store.atomic_write_json(d / "task.json", spec.to_dict())
        store.atomic_write_json(d / "config.json", {"method": "selfguide",
                                                    "model": {"model": "embedded"}})
        return d

    def candidates(self, name: str, n: int = 40) -> Path:
        d = self.task(name)
        candidates_frame(n).to_parquet(d / "candidates.parquet")
        return d

    def dataset(self, name: str, rows: list[dict] | None = None) -> Path:
        from selfguide.runs import store
        d = self.candidates(name)
        rows = rows if rows is not None else [
            {"id": f"c{i}", "prompt": f"Review: text {i}", "completion": lab, "input": f"t{i}",
             "output": lab, "label": lab}
            for i, lab in enumerate(["positive", "negative"] * 6)]
        store.atomic_write_text(d / "dataset" / "train.jsonl",
                                "".join(json.dumps(r) + "\n" for r in rows))
        return d

    def evaluated(self, name: str, predictions: list[dict]) -> Path:
        from selfguide.runs import store
        d = self.dataset(name)
        (d / "train" / "adapter").mkdir(parents=True, exist_ok=True)
        store.atomic_write_text(d / "eval" / "predictions.jsonl",
                                "".join(json.dumps(r) + "\n" for r in predictions))
        n = len(predictions)
        before = sum(r["score_before"] for r in predictions) / n
        after = sum(r["score_after"] for r in predictions) / n
        store.atomic_write_json(d / "eval" / "metrics.json", {
            "metric": "exact_match", "n": n, "before": before, "after": after,
            "difference": {"delta": after - before, "low": -0.1, "high": 0.6},
            "changed": sum(bool(r.get("changed")) for r in predictions),
            "per_label_before": {"positive": 0.5, "negative": 0.0},
            "per_label_after": {"positive": 1.0, "negative": 1.0},
            "confusion_before": {"positive": {"positive": 1, "negative": 1, "(other)": 0},
                                 "negative": {"positive": 1, "negative": 0, "(other)": 0}},
            "confusion_after": {"positive": {"positive": 2, "negative": 0, "(other)": 0},
                                "negative": {"positive": 0, "negative": 1, "(other)": 0}},
        })
        return d


@pytest.fixture()
def runs(workspace) -> RunBuilder:
    return RunBuilder(workspace)


class JobRecorder:
    """Replaces ``selfguide.jobs.start``: records the call and writes a 'starting' status
    file for a pid that does not exist, so nothing is spawned inside AppTest."""

    def __init__(self):
        self.calls: list[tuple[str, str, list[str]]] = []

    def __call__(self, run, stage, argv, **kw):
        from selfguide import jobs
        from selfguide.runs import store
        self.calls.append((str(run), stage, list(argv)))
        jdir = jobs.job_dir(store.resolve_run_dir(str(run), create=True), stage)
        jdir.mkdir(parents=True, exist_ok=True)
        return jobs.status(run, stage)


@pytest.fixture()
def job_recorder(monkeypatch) -> JobRecorder:
    from selfguide import jobs

    rec = JobRecorder()
    monkeypatch.setattr(jobs, "start", rec)
    return rec


@pytest.fixture()
def app(workspace):
    """A factory: ``app(run=None, **session_state)`` -> a not-yet-run AppTest."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from studio.app import resources, state
    resources.clear()
    st.cache_resource.clear()
    st.cache_data.clear()

    def make(run: str | None = None, **session) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=60)
        if run is not None:
            at.session_state[state.RUN_KEY] = run
        for k, v in session.items():
            at.session_state[k] = v
        return at

    yield make
    resources.clear()
    st.cache_resource.clear()
    st.cache_data.clear()
