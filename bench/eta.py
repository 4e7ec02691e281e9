"""Step-1 ETA benchmark: the ETA shown after training step 1 against the real time left.

Trains copies of one synthesized run (its dataset, no adapter or checkpoints) with the
quick preset, each in its own subprocess, in three variants:

- ``none``: no warm-up pass and glibc's default allocator settings (``SELFGUIDE_MALLOC=0``)
  — the path before session 11;
- ``warmup``: the two-row warm-up pass before step 1 (``train_loop.warm_up``), default
  allocator;
- ``both``: today's default (warm-up pass + ``allocator.keep_freed_memory``).

For each it prints the ETA of the first ``progress`` event of the train stage, the real
time from that event to the last one, their ratio minus one (issue 12's target: within
25%), the training wall time and tok/s from ``train/metrics.json``, peak RSS and minor page
faults of the subprocess (``os.wait4``). Variants run in the order given by ``--order``
(default ``none,warmup,both,both,warmup,none``: each variant once early and once late, so a
drift of the machine does not favour one). Results also go to ``<workspace>/eta-results.json``.

Usage: python bench/eta.py --workspace WS --run RUN [--order none,both] [--preset quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NO_WARMUP = ("import selfguide.training.loop as t; t.warm_up = lambda *a, **k: 0.0; "
             "from selfguide.cli import main; sys.exit(main())")
VARIANTS = {"none": (NO_WARMUP, {"SELFGUIDE_MALLOC": "0"}),
            "warmup": (None, {"SELFGUIDE_MALLOC": "0"}),
            "both": (None, {})}


def copy_run(ws: Path, run: str, name: str) -> None:
    """A fresh copy of ``run`` with its data but none of its training or evaluation."""
    src, dst = ws / "runs" / run, ws / "runs" / name
    if dst.exists():
        shutil.rmtree(dst)
    # the names match at every depth: train/, eval/, export/ and jobs/train/, jobs/eval/
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("train", "eval", "export"))


def step1_eta(events_file: Path) -> tuple[float, float]:
    """(ETA shown at step 1, real seconds from then to the last step)."""
    evs = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    prog = [e for e in evs if e.get("type") == "progress" and e.get("stage") == "train"]
    if len(prog) < 2 or prog[0].get("eta") is None:
        raise RuntimeError(f"no step-1 ETA in {events_file}")
    return float(prog[0]["eta"]), prog[-1]["t"] - prog[0]["t"]


def train_variant(ws: Path, run: str, variant: str, i: int, preset: str) -> dict:
    name = f"{run}-eta-{variant}{i}"
    copy_run(ws, run, name)
    code, extra = VARIANTS[variant]
    cmd = ([sys.executable, "-c", "import sys; " + code] if code
           else [sys.executable, "-m", "selfguide"]) + ["train", "--run", name, "--preset", preset]
    env = {**os.environ, "SELFGUIDE_WORKSPACE": str(ws), **extra}
    load = os.getloadavg()[0]
    t0 = time.time()
    with open(ws / f"{name}.log", "w") as log:
        p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
    wall = time.time() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"training {name} failed; see {ws / f'{name}.log'}")
    eta, real = step1_eta(ws / "runs" / name / "jobs" / "train" / "events.jsonl")
    metrics = json.loads((ws / "runs" / name / "train" / "metrics.json").read_text())
    return {"run": name, "variant": variant, "load_before": round(load, 2),
            "eta_step1_s": round(eta, 1), "real_s": round(real, 1),
            "eta_error": round(eta / real - 1, 3), "process_wall_s": round(wall, 1),
            "train_wall_s": metrics.get("wall_s"), "tokens_per_s": metrics.get("tokens_per_s"),
            "peak_rss_gb": round(usage.ru_maxrss / 1e6, 2), "minor_faults": usage.ru_minflt}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", required=True, type=Path, help="SELFGUIDE_WORKSPACE")
    ap.add_argument("--run", required=True)
    ap.add_argument("--order", default="none,warmup,both,both,warmup,none")
    ap.add_argument("--preset", default="quick")
    a = ap.parse_args()
    order = a.order.split(",")
    if unknown := [v for v in order if v not in VARIANTS]:
        ap.error(f"unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}")
    rows, seen = [], {}
    print("| variant | ETA at step 1 s | real s | error | train wall s | tok/s | peak RSS GB "
          "| minor faults | load before |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
          flush=True)
    for v in order:
        seen[v] = seen.get(v, 0) + 1
        r = train_variant(a.workspace, a.run, v, seen[v], a.preset)
        rows.append(r)
        print(f"| {v} | {r['eta_step1_s']} | {r['real_s']} | {r['eta_error']:+.0%} | "
              f"{r['train_wall_s']} | {r['tokens_per_s']} | {r['peak_rss_gb']} | "
              f"{r['minor_faults']:,} | {r['load_before']} |", flush=True)
    (a.workspace / "eta-results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
