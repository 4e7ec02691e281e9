"""Continuous refill and the prefill's per-row attention, side by side (issue 33).

The anchors' two workloads (``bench/anchors.py``: task1529, 72 stage-1 prompts at T 0.7
with 128 new tokens; 72 labelling prompts x 5 samples, 8 new tokens) plus evaluation (100
task prompts, greedy, 16 new tokens), each run by up to three variants of the embedded
model's backend, every variant in a child process of its own, interleaved and repeated (the
VM's speed drifts by 10-20% within minutes: compare the minimum and the median of one run):

- ``before``: a checkout given by ``--before`` (the code before this change: batch after
  batch, the prefill's suffix attention through one masked call);
- ``batches``: this code as shipped (``SELFGUIDE_REFILL=0``, batch after batch);
- ``refill``: this code with ``SELFGUIDE_REFILL=1`` (waiting prompts take the places of
  finished ones).

Prints per variant and workload the wall seconds (min, median), the prefill seconds, the
decode steps and the rows they computed; writes bench/results/refill.json. ``--isa avx2``
restricts the torch side to AVX2 without native bf16 (see bench/anchors.py). Bench only.

Usage: python bench/refill.py [--isa native|avx2] [--repeats 2] [--before DIR]
       [--workloads stage1,label,eval]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "refill.json"

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
import anchors
sys.path.insert(0, sys.argv[1])  # anchors puts this checkout first: the variant's code wins
import selfguide
assert selfguide.__file__.startswith(sys.argv[1]), selfguide.__file__
from selfguide.backends.hf import HFGenerator
from selfguide.models.loading import load_model
from selfguide.settings.fields import ModelConfig, SamplingConfig
from selfguide.task.formats import load_task
from selfguide.task.prompts import task_prompt
lm = load_model(ModelConfig(model="embedded", precision="auto"))
gen = HFGenerator.from_loaded(lm)
gen.generate(["warm up"], SamplingConfig(max_new_tokens=2))
task = load_task(anchors.NIV2 / "task1529.json")
work = anchors.workloads(task, gen, 72)
rows = list(task.test)
work["eval"] = ([task_prompt(task, r.input) for r in rows[:100]], True,
                SamplingConfig(temperature=0.0, max_new_tokens=16), 1)
prompts, chat, s, n = work[sys.argv[3]]
load = os.getloadavg()[0]
t = time.perf_counter()
out = gen.generate(prompts, s, n, chat=chat)
secs = time.perf_counter() - t
st = gen.stats
print(json.dumps({"seconds": secs, "prefill_seconds": st["prefill_seconds"],
                  "generated": st["generated_tokens"], "steps": st.get("decode_steps"),
                  "row_steps": st.get("row_steps"), "prefills": st["batches"],
                  "precision": lm.info.precision, "load_before": load,
                  "outputs": out if sys.argv[3] == "eval" else None}))
"""


def run(code: Path, workload: str, env: dict) -> dict:
    p = subprocess.run([sys.executable, "-c", CHILD, str(code), str(ROOT / "bench"), workload],
                       capture_output=True, text=True, env={**os.environ, **env}, check=False)
    if p.returncode != 0:
        raise SystemExit(f"child failed ({workload}):\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", default="native", choices=("native", "avx2"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--before", default=None, help="a checkout of the code before the change")
    ap.add_argument("--workloads", default="stage1,label,eval")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    import anchors

    isa_env = anchors.AVX2_ENV if a.isa == "avx2" else {}
    variants = {"batches": (ROOT, {"SELFGUIDE_REFILL": "0"}), "refill": (ROOT, {"SELFGUIDE_REFILL": "1"})}
    if a.before:
        variants = {"before": (Path(a.before), {}), **variants}
    res: dict = {"meta": {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                          "isa": a.isa, "cpus": os.cpu_count(), "repeats": a.repeats,
                          "command": "python bench/refill.py " + " ".join(sys.argv[1:])}}
    for w in a.workloads.split(","):
        res[w] = {v: [] for v in variants}
        for rep in range(a.repeats):
            for v, (code, env) in variants.items():
                r = run(code, w, {**isa_env, **env})
                res[w][v].append(r)
                print(f"{w} {v} #{rep + 1}: {r['seconds']:.1f} s (prefill "
                      f"{r['prefill_seconds']:.1f} s), {r['generated']} tokens, {r['steps']} "
                      f"steps, {r['row_steps']} rows, {r['prefills']} prefills, "
                      f"{r['precision']}, load {r['load_before']:.2f}", flush=True)
    print(f"\n{res['meta']['measured']}, --isa {a.isa}, {a.repeats} runs per variant")
    print("| workload | variant | wall s min / median | prefill s min | decode steps | rows "
          "computed | greedy outputs = batches |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for w in a.workloads.split(","):
        for v, runs in res[w].items():
            secs = [r["seconds"] for r in runs]
            same = ""
            if w == "eval" and runs[0]["outputs"] is not None:
                ref = res[w]["batches"][0]["outputs"]
                same = f"{sum(x == y for x, y in zip(runs[0]['outputs'], ref))} / {len(ref)}"
            print(f"| {w} | {v} | {min(secs):.1f} / {statistics.median(secs):.1f} | "
                  f"{min(r['prefill_seconds'] for r in runs):.1f} | {runs[0]['steps']} | "
                  f"{runs[0]['row_steps']} | {same} |")
    for w in a.workloads.split(","):
        for runs in res[w].values():
            for r in runs:
                r.pop("outputs", None)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
