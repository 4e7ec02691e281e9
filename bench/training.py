"""Benchmark of the training step: QLoRA vs LoRA (bf16) vs LoRA (fp32) on the embedded model.

Each method runs in its own subprocess (so peak RSS is its own) through the project's
``selfguide.training.train`` on the same rows: prompts of an NIv2 dev task built with THE
prompt (``prompts.task_prompt``) and their reference answers as completions. Reports
training tokens/s (non-padding tokens seen / training wall time), step time, load time and
peak RSS, side by side. Targets (issue 5): QLoRA >= 400 tok/s, peak RSS < 4 GB.

Usage: python bench/training.py [--steps 8] [--batch-size 2] [--methods qlora,lora-bf16,lora-fp32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASK = REPO.parent / "shared" / "data" / "niv2-dev" / "task1529.json"
METHODS = {"qlora": {"method": "qlora"},
           "lora-bf16": {"method": "lora", "precision": "bf16"},
           "lora-fp32": {"method": "lora", "precision": "fp32"}}


def make_run(ws: Path, rows: int) -> str:
    from selfguide import store
    from selfguide.prompts import task_prompt
    from selfguide.task_formats import load_task

    task = load_task(TASK)
    run = store.resolve_run_dir("bench-train", ws, create=True)
    store.atomic_write_json(run / "task.json", task.to_dict(include_test=False))
    store.atomic_write_json(run / "config.json", {"model": {"model": "embedded"}})
    recs = [{"id": ex.id, "prompt": task_prompt(task, ex.input), "completion": ex.outputs[0],
             "input": ex.input, "output": ex.outputs[0], "label": ex.outputs[0]}
            for ex in task.test[:rows]]
    store.atomic_write_text(run / "dataset" / "train.jsonl",
                            "".join(json.dumps(r) + "\n" for r in recs))
    return "bench-train"


def child(method: str, steps: int, batch_size: int, ws: Path) -> dict:
    import resource

    from selfguide import store, training
    from selfguide.config import from_dict
    from selfguide.configs.training import TrainConfig

    run_dir = store.resolve_run_dir("bench-train", ws)
    out = run_dir / method
    cfg = from_dict(TrainConfig, {**METHODS[method], "max_steps": steps,
                                  "batch_size": batch_size, "grad_accum": 1,
                                  "val_fraction": 0.0,
                                  "save_strategy": "steps", "save_steps": 10**6})
    t0 = time.time()
    with open(os.devnull, "w") as devnull:
        res = training.train(run_dir, cfg, stream=devnull)
    m = res.metrics
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    r = {"method": method, "steps": m["steps"], "tokens_per_s": m["tokens_per_s"],
         "train_s": m["wall_s"], "total_s": round(time.time() - t0, 1),
         "peak_rss_gb": round(rss / 2**30, 2), "train_loss": round(m["train_loss"], 4)}
    out.mkdir(exist_ok=True)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ws", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.steps, a.batch_size, Path(a.ws))))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-train-") as tmp:
        ws = Path(tmp)
        make_run(ws, a.rows)
        for method in a.methods.split(","):
            cmd = [sys.executable, __file__, "--child", method, "--steps", str(a.steps),
                   "--batch-size", str(a.batch_size), "--ws", str(ws)]
            p = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if p.returncode != 0:
                print(p.stderr[-2000:], file=sys.stderr)
                results.append({"method": method, "error": p.stderr.strip().splitlines()[-1]})
                continue
            results.append(json.loads(p.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    print(f"\nembedded model, {a.steps} steps x batch {a.batch_size}, {os.cpu_count()} CPUs\n")
    print("| method | train tok/s | train s | peak RSS GB | final loss |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        if "error" in r:
            print(f"| {r['method']} | error: {r['error']} | | | |")
        else:
            print(f"| {r['method']} | {r['tokens_per_s']} | {r['train_s']} | "
                  f"{r['peak_rss_gb']} | {r['train_loss']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
