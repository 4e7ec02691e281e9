"""Benchmark of the training step: QLoRA vs LoRA (bf16) vs LoRA (fp32) on the embedded model.

Each method runs in its own subprocess (so peak RSS is its own) through the project's
``selfguide.training.trainer.train`` on the same rows: prompts of an NIv2 dev task built with THE
prompt (``prompts.task_prompt``) and their reference answers as completions. Reports
training tokens/s (non-padding tokens seen / training wall time), step time, load time and
peak RSS, side by side. Targets (issue 5): QLoRA >= 400 tok/s, peak RSS < 4 GB.

Usage: python bench/training.py [--steps 8] [--batch-size 2] [--methods qlora,lora-bf16,lora-fp32]
                                [--accum 1] [--repeats 1] [--isa native|avx2]

``--isa avx2`` (issue 33) runs the torch side restricted to AVX2 without native bf16 on an
AVX-512 machine (``bench/anchors.py``'s variables, set before torch loads), the stand-in for
a laptop CPU; the table then says which ISA torch dispatched to. bitsandbytes' own CPU
kernels (QLoRA's 4-bit dequantisation) do not read those variables, so a QLoRA figure under
the restriction is an upper bound for a real AVX2 CPU. ``--accum`` is the batches per
optimizer step (the product's default 4, merged into one forward on a CPU); ``--repeats``
runs the methods in turn that many times (A B A B), each in its own process.

``--compare`` (session 5) instead trains the default configuration (QLoRA, 2 x 4 rows per
step, ``--epochs``) twice per round, old settings then new, ``--rounds`` times (A B A B),
on the same rows (``--task topics``: the first ``--rows`` test inputs of
examples/topics.json, ~166 tokens; ``--task task1529``: ~336 tokens): "old" is
``merge_batches=false`` (2 rows per forward, 4 accumulated) with the step-count ETA the
events callback used to give (steps left x time per step so far, clock from train begin);
"new" merges the 4 batches into one of 8 rows and reports the ETA the events now carry
(work left in tokens x time per token, clock from the first step). It prints tok/s, final
loss and, at step 1, each ETA against the real remaining time, with the 1-min load average
at the start and end of the whole comparison.

Usage: python bench/training.py --compare [--task topics] [--rows 32] [--epochs 3] [--rounds 2]

``--compare --ablate share`` (session 6) compares ``share_prefix`` off ("old") and on
("new", the default since): both with merged batches; "new" runs the prompt prefix the rows
of a batch share once per forward, and may merge more rows per forward because the prefix
counts once against the 1,536-token cap. The table adds the rows per forward and the share
of row tokens that were not recomputed.
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
TASKS = {"task1529": REPO.parent / "shared" / "data" / "niv2-dev" / "task1529.json",
         "topics": REPO / "examples" / "topics.json"}
METHODS = {"qlora": {"method": "qlora"},
           "lora-bf16": {"method": "lora", "precision": "bf16"},
           "lora-fp32": {"method": "lora", "precision": "fp32"}}


def make_run(ws: Path, rows: int, task_name: str = "task1529") -> str:
    from selfguide.runs import store
    from selfguide.task.prompts import task_prompt
    from selfguide.task.formats import load_task

    task = load_task(TASKS[task_name])
    run = store.resolve_run_dir("bench-train", ws, create=True)
    store.atomic_write_json(run / "task.json", task.to_dict(include_test=False))
    store.atomic_write_json(run / "config.json", {"model": {"model": "embedded"}})
    recs = [{"id": ex.id, "prompt": task_prompt(task, ex.input), "completion": ex.outputs[0],
             "input": ex.input, "output": ex.outputs[0], "label": ex.outputs[0]}
            for ex in task.test[:rows]]
    store.atomic_write_text(run / "dataset" / "train.jsonl",
                            "".join(json.dumps(r) + "\n" for r in recs))
    return "bench-train"


def child(method: str, steps: int, batch_size: int, ws: Path, accum: int = 1) -> dict:
    import resource

    from selfguide.runs import store

    from selfguide.training import trainer as training
    from selfguide.settings.fields import from_dict
    from selfguide.settings.training import TrainConfig

    run_dir = store.resolve_run_dir("bench-train", ws)
    out = run_dir / method
    cfg = from_dict(TrainConfig, {**METHODS[method], "max_steps": steps,
                                  "batch_size": batch_size, "grad_accum": accum,
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



# --------------------------------------------------------------------------- --compare (session 5)

def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def step1_etas(evs: list[dict]) -> dict:
    """ETA at step 1 by the old rule (steps) and as the events now carry it, and the real
    remaining time (last step's end minus step 1's)."""
    begin = next(e for e in evs if e["type"] == "train_begin")
    prog = [e for e in evs if e["type"] == "progress" and e.get("stage") == "train"]
    first, last = prog[0], prog[-1]
    old = (first["total"] - first["done"]) * (first["t"] - begin["t"]) / first["done"]
    return {"eta1_old_rule": round(old, 1), "eta1_events": round(first["eta"], 1),
            "remaining_real": round(last["t"] - first["t"], 1),
            "step1_s": round(first["t"] - begin["t"], 2)}


def compare_child(variant: str, epochs: float, ws: Path, ablate: str = "merge") -> dict:
    import resource

    from selfguide.runs import store

    from selfguide.training import trainer as training
    from selfguide.settings.training import TrainConfig
    from selfguide.runs.events import EventLog, read_events

    run_dir = store.resolve_run_dir("bench-train", ws)
    log = run_dir / f"events-{variant}-{time.time():.0f}.jsonl"
    if ablate == "share":
        cfg = TrainConfig(epochs=epochs, val_fraction=0.0, share_prefix=variant == "new")
    else:
        cfg = TrainConfig(epochs=epochs, val_fraction=0.0, merge_batches=variant == "new",
                          share_prefix=False)
    with open(os.devnull, "w") as devnull:
        res = training.train(run_dir, cfg, events=EventLog(log), stream=devnull)
    m = res.metrics
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    shared = (m.get("prefix_shared") or {}).get("saved_tokens", 0)
    seen = m["tokens_per_s"] * m["wall_s"]
    return {"variant": variant, "steps": m["steps"], "tokens_per_s": m["tokens_per_s"],
            "rows_per_forward": f"{m['rows_per_forward']} x {m['forwards_per_step']}",
            "not_recomputed": round(shared / seen, 3) if seen else 0.0,
            "train_s": m["wall_s"], "train_loss": round(m["train_loss"], 5),
            "peak_rss_gb": round(rss / 2**30, 2), **step1_etas(read_events(log))}


def compare(a: argparse.Namespace) -> int:
    results, load0, t0 = [], load1(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="sg-bench-train-") as tmp:
        make_run(Path(tmp), a.rows, a.task)
        for _ in range(a.rounds):
            for variant in ("old", "new"):
                cmd = [sys.executable, __file__, "--compare", "--child", variant,
                       "--epochs", str(a.epochs), "--ws", tmp, "--ablate", a.ablate]
                la = load1()
                p = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if p.returncode != 0:
                    print(p.stderr[-2000:], file=sys.stderr)
                    return 1
                results.append({**json.loads(p.stdout.strip().splitlines()[-1]),
                                "load_before": la})
                print(json.dumps(results[-1]), flush=True)
    t1 = time.strftime("%H:%M UTC", time.gmtime())
    print(f"\n{a.task}, {a.rows} rows, {a.epochs} epochs, QLoRA, 2 x 4 rows per step; {t0}"
          f"-{t1}; 1-min load {load0:.2f} at start, {load1():.2f} at end; "
          f"{os.cpu_count()} CPUs\n")
    names = {"merge": {"old": "old: 2 x 4 accumulated", "new": "new: merged"},
             "share": {"old": "old: prefix per row", "new": "new: prefix shared"}}[a.ablate]
    print("| run | settings | rows per forward | not recomputed | train tok/s | train s "
          "| final loss | peak RSS GB | load before | step 1 s | ETA at step 1: old rule "
          "| events now | real remaining |")
    print("| --- " * 13 + "|")
    for i, r in enumerate(results, 1):
        print(f"| {i} | {names[r['variant']]} | {r['rows_per_forward']} | "
              f"{r['not_recomputed']:.0%} | {r['tokens_per_s']} | {r['train_s']} | "
              f"{r['train_loss']} | {r['peak_rss_gb']} | {r['load_before']:.2f} | "
              f"{r['step1_s']} | {r['eta1_old_rule']} | {r['eta1_events']} | "
              f"{r['remaining_real']} |")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--accum", type=int, default=1, help="Batches per optimizer step.")
    ap.add_argument("--repeats", type=int, default=1, help="Runs of each method, in turn.")
    ap.add_argument("--isa", default="native", choices=("native", "avx2"),
                    help="avx2: torch restricted to AVX2 without native bf16 (issue 33).")
    ap.add_argument("--compare", action="store_true", help="old vs new settings, A B A B")
    ap.add_argument("--task", default="task1529", choices=sorted(TASKS))
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ablate", default="merge", choices=("merge", "share"),
                    help="--compare: merged batches (session 5) or the shared prefix (6)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ws", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    import anchors

    anchors.restrict_isa(a.isa)  # starts this script again with the variables set
    if a.compare and a.child:
        print(json.dumps(compare_child(a.child, a.epochs, Path(a.ws), a.ablate)))
        return 0
    if a.compare:
        return compare(a)
    if a.child:
        print(json.dumps(child(a.child, a.steps, a.batch_size, Path(a.ws), a.accum)))
        return 0
    results, load0, t0 = [], load1(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="sg-bench-train-") as tmp:
        ws = Path(tmp)
        make_run(ws, a.rows, a.task)
        for _ in range(a.repeats):
            for method in a.methods.split(","):
                cmd = [sys.executable, __file__, "--child", method, "--steps", str(a.steps),
                       "--batch-size", str(a.batch_size), "--accum", str(a.accum),
                       "--isa", a.isa, "--ws", str(ws)]
                la = load1()
                p = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if p.returncode != 0:
                    print(p.stderr[-2000:], file=sys.stderr)
                    results.append({"method": method,
                                    "error": p.stderr.strip().splitlines()[-1]})
                    continue
                results.append({**json.loads(p.stdout.strip().splitlines()[-1]),
                                "load_before": la})
                print(json.dumps(results[-1]), flush=True)
    meta = anchors.cpu_meta()
    print(f"\nembedded model, {a.task}, {a.steps} steps x batch {a.batch_size} x accum "
          f"{a.accum}; {t0}-{time.strftime('%H:%M UTC', time.gmtime())}; 1-min load "
          f"{load0:.2f} at start, {load1():.2f} at end; {os.cpu_count()} CPUs; torch "
          f"capability {meta['torch_capability']}, native bf16 {meta['bf16_native']}, "
          f"ISA {a.isa}\n")
    print("| method | train tok/s | train s | peak RSS GB | final loss | load before |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        if "error" in r:
            print(f"| {r['method']} | error: {r['error']} | | | | |")
        else:
            print(f"| {r['method']} | {r['tokens_per_s']} | {r['train_s']} | "
                  f"{r['peak_rss_gb']} | {r['train_loss']} | {r['load_before']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
