"""A complete run written by hand, for the issue-38 reliability tests (imported by
test_rel_runfiles.py and test_rel_overlap.py; no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

from selfguide import cli
from selfguide.runs.dataset import write_dataset
from selfguide.runs.rundir import RunDir
from selfguide.task.spec import TaskSpec

TASK = {"name": "sent", "instruction": "Is the review positive or negative?",
        "task_type": "classification", "labels": ["positive", "negative"],
        "examples": [{"input": "great film", "output": "positive"},
                     {"input": "boring plot", "output": "negative"},
                     {"input": "lovely cast", "output": "positive"}],
        "test": [{"input": "fun story", "output": "positive"},
                 {"input": "dull story", "output": "negative"}]}
ROWS = [{"id": f"r{i}", "prompt": "p", "completion": c, "input": f"in {i}", "output": c,
         "label": c} for i, c in enumerate(("positive", "negative", "positive"))]


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def make_run(name: str = "r1") -> RunDir:
    """A complete run written by hand: synthesized, filtered, trained (adapter manifest
    and config, no weights) and evaluated."""
    run = RunDir.named(name, create=True)
    run.write_task(TaskSpec.from_dict(TASK))
    run.write_config({"method": "selfguide", "model": {"model": "not-loaded"},
                      "synthesis": {}, "filters": {}, "seed": 0, "versions": {}})
    for stage in ("synthesize", "train", "eval"):
        run.set_stage(stage, "done")
    _json(run.labelling_file, {"protocol": "plain", "reason": "r", "evidence": {}})
    _json(run.overrides_file, {"r0": True})
    write_dataset(run, ROWS, [], {"task": "sent", "candidates": 3, "kept": 3, "train": 3,
                                  "val": 0, "label_strategy": "vote"})
    _json(run.train_config_file, {"train": {}, "model": {}, "data": run.dataset_fingerprint(),
                                  "hash": "h"})
    _json(run.train_metrics_file, {"rows": 3, "steps": 1, "train_loss": 0.5})
    _json(run.adapter_manifest_file, {"base_fingerprint": "f", "model": "not-loaded",
                                      "chat": True, "kind": "lora"})
    _json(run.adapter_dir / "adapter_config.json", {"peft_type": "LORA", "r": 4})
    _json(run.metrics_file, {"metric": "exact_match", "n": 2, "before": 0.5, "after": 1.0,
                             "task": "sent", "inputs": {"adapter": run.adapter_fingerprint()}})
    run.write_evaluation([{"id": "t0", "after": "positive"}, {"id": "t1", "after": "negative"}],
                         json.loads(run.metrics_file.read_text()))
    return run


def snapshot(run: RunDir) -> dict[str, bytes]:
    return {str(p.relative_to(run.path)): p.read_bytes() for p in sorted(run.path.rglob("*"))
            if p.is_file() and "jobs" not in p.relative_to(run.path).parts
            and not p.name.endswith(".lock")}


def _main(argv, capsys) -> tuple[int, str]:
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return rc, out.err + out.out
