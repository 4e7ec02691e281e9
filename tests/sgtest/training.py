"""Shared test helpers (moved from tests/training/test_trainer.py): make_run, tensors."""

from __future__ import annotations

import json
from pathlib import Path

from selfguide.runs import store
from selfguide.runs.rundir import RunDir
from selfguide.settings.training import TrainConfig

LABELS = ("positive", "negative")


def make_run(ws: Path, model_dir: Path, name: str = "r", n: int = 24, *,
             task_type: str = "classification") -> Path:
    """A run directory with task.json, config.json and a small dataset/train.jsonl."""
    run = store.resolve_run_dir(name, ws, create=True)
    store.atomic_write_json(run / "config.json", {"model": {"model": str(model_dir)}})
    store.atomic_write_json(run / "task.json", {
        "name": "sent", "instruction": "is this movie positive or negative",
        "demos": [{"input": "this movie was great", "output": "positive"},
                  {"input": "this film was bad", "output": "negative"},
                  {"input": "this movie was fun", "output": "positive"}],
        "task_type": task_type, "labels": list(LABELS), "metric": "exact_match",
        "test": [{"input": "this film was boring", "outputs": ["negative"], "id": "t1"},
                 {"input": "this movie was great and fun", "outputs": ["positive"], "id": "t2"},
                 {"input": "the cat sat on the mat", "outputs": ["negative"], "id": "t3"}]})
    from selfguide.task.prompts import task_prompt

    task = RunDir(run).read_task(required=True)
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        inp = "this movie was great and fun" if pos else "this film was bad and boring"
        rows.append({"id": f"r{i}", "prompt": task_prompt(task, inp),
                     "completion": "positive" if pos else "negative", "input": inp,
                     "output": "positive" if pos else "negative",
                     "label": "positive" if pos else "negative"})
    store.atomic_write_text(run / "dataset" / "train.jsonl",
                            "".join(json.dumps(r) + "\n" for r in rows))
    return run


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def checkpointing_cfg(max_steps: int) -> TrainConfig:
    """Tiny-model LoRA that writes a checkpoint every 2 steps and keeps them all."""
    return TrainConfig(grad_accum=1, method="lora", precision="fp32", max_steps=max_steps,
                       batch_size=4, learning_rate=5e-3, val_fraction=0.0,
                       save_strategy="steps", save_steps=2, save_total_limit=5)
