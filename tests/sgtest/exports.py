"""Shared test helpers (moved from tests/export/test_dataset_exports_and_cards.py): _fake_eval, _report."""

from __future__ import annotations

from selfguide.runs import store


def _fake_eval(run, after=0.75, before=0.25):
    """metrics.json shaped like evaluation.evaluate writes it (numbers chosen per test)."""
    diff = {"delta": after - before, "low": 0.1, "high": 0.9, "p_le_0": 0.0, "samples": 200}
    block = {"before": before, "after": after, "difference": diff}
    store.atomic_write_json(run / "eval" / "metrics.json", {
        "metric": "exact_match", "n": 4, **block, "exact_match": block,
        "rouge_l": {"before": 0.3, "after": 0.8, "difference": {**diff, "delta": 0.5}},
        "lenient_em": {"before": 0.5, "after": 1.0, "difference": {**diff, "delta": 0.5}},
        "paper_rouge_l": {"before": 0.4, "after": 0.9, "difference": {**diff, "delta": 0.5}},
        "task": "sent", "test_file": ""})


def _report(run, kept=None):
    """A dataset report for the run; ``kept`` defaults to the rows its train.jsonl holds
    (the run's files must agree: whole-file JSONL is checked against the report)."""
    if kept is None:
        kept = len((run / "dataset" / "train.jsonl").read_text().splitlines())
    store.atomic_write_json(run / "dataset" / "report.json", {
        "task": "sent", "candidates": 17, "kept": kept, "train": kept, "val": 0,
        "labelling": {"protocol": "chat", "strategy": "vote", "reason": "chat won 3 of 3."}})

