"""A small real end-to-end run on the embedded SmolLM2-135M: LoRA train on the unquantized base (bf16 where the CPU has it natively, else fp32) (a few steps; 4-bit QLoRA is covered on the tiny model) and
before/after evaluation through the CLI, as ``selfguide run`` does after synthesis."""

from __future__ import annotations

import json

import pytest

from selfguide import cli
from selfguide.runs import store

TASK = {
    "name": "sentiment", "task_type": "classification", "labels": ["positive", "negative"],
    "metric": "exact_match",
    "instruction": "Decide whether the review is positive or negative.",
    "demos": [{"input": "Great phone, the battery lasts days.", "output": "positive"},
              {"input": "It broke after a week.", "output": "negative"},
              {"input": "Soft fabric and a perfect fit.", "output": "positive"}],
    "test": [{"input": "A warm, funny film.", "outputs": ["positive"], "id": "a"},
             {"input": "The blender leaks.", "outputs": ["negative"], "id": "b"},
             {"input": "Two hours I will never get back.", "outputs": ["negative"], "id": "c"}],
}
ROWS = [("I loved every minute of it.", "positive"), ("Terrible service, cold food.", "negative"),
        ("Works exactly as described.", "positive"), ("The screen cracked on day one.", "negative"),
        ("Best purchase this year.", "positive"), ("Boring and far too long.", "negative")]


@pytest.mark.slow
def test_embedded_lora_train_and_eval(workspace):
    from selfguide.runs.rundir import RunDir
    from selfguide.task.prompts import task_prompt

    run = store.resolve_run_dir("emb", create=True)
    store.atomic_write_json(run / "task.json", TASK)
    store.atomic_write_json(run / "config.json", {"model": {"model": "embedded"}})
    task = RunDir(run).read_task(required=True)
    store.atomic_write_text(run / "dataset" / "train.jsonl", "".join(
        json.dumps({"id": str(i), "prompt": task_prompt(task, x), "completion": y, "input": x,
                    "output": y, "label": y}) + "\n" for i, (x, y) in enumerate(ROWS)))
    assert cli.main(["train", "--run", "emb", "--method", "lora", "--max-steps", "2", "--batch-size", "2",
                     "--grad-accum", "1", "--val-fraction", "0", "--max-length", "384"]) == 0
    man = json.loads((run / "train/adapter/selfguide_adapter.json").read_text())
    assert man["method"] == "lora" and man["model"] == "embedded" and man["chat"] is True
    assert (run / "train/adapter/adapter_model.safetensors").is_file()
    assert cli.main(["eval", "--run", "emb", "--max-new-tokens", "3", "--bootstrap", "20"]) == 0
    m = json.loads((run / "eval/metrics.json").read_text())
    assert m["n"] == 3 and 0.0 <= m["before"] <= 1.0 and 0.0 <= m["after"] <= 1.0
    rows = store.read_jsonl(run / "eval/predictions.jsonl")
    assert all(isinstance(r["before"], str) and isinstance(r["after"], str) for r in rows)
