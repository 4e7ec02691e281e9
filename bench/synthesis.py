"""Benchmark: the SELF-GUIDE ``quick`` preset on NIv2 dev tasks with the embedded model.

For each task: wall time per stage (inputs, annotate, filters+dataset), generated tokens/s,
the funnel, labels per strategy and their agreement with the target label, diagnostics.
For classification tasks, ``--label-probe N`` also measures how well each self-labelling
strategy labels N *real* held-out inputs (accuracy against the gold label): the only
check we can make of a strategy without training. Finally it times ``filters.apply`` on
5,000 candidates (everything except near-duplicates, whose scores are cached).

    .venv/bin/python bench/synthesis.py                      # task1529 task1345, quick
    .venv/bin/python bench/synthesis.py --tasks task1529 --label-probe 48

Writes bench/results/synthesis.json and prints a markdown summary (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
NIV2 = REPO.parent / "shared" / "data" / "niv2-dev"


def stage_times(events: list[dict]) -> dict:
    out, start = {}, {}
    for e in events:
        if e["type"] == "stage":
            if e["state"] == "start":
                start[e["stage"]] = e["t"]
            elif e["state"] == "done" and e["stage"] in start:
                out[e["stage"]] = round(e["t"] - start[e["stage"]], 1)
    for stage in ("inputs", "annotate"):
        prog = [e for e in events if e["type"] == "progress" and e["stage"] == stage]
        if prog:
            out[f"{stage}_tokens_per_s"] = prog[-1]["tokens_per_s"]
    return out


def run_task(name: str, gen, preset: str, workdir: Path, seed: int,
             rounds: int | None = None) -> dict:
    from selfguide.runs.events import EventLog, read_events
    from selfguide.methods.selfguide import pipeline as P
    from selfguide.methods.selfguide.config import preset as get_preset
    from selfguide.task.formats import load_task

    task = load_task(NIV2 / f"{name}.json")
    over = {"seed": seed, **({"rounds": rounds} if rounds else {})}
    synth, filters = get_preset(preset, synthesis=over)
    full, _ = get_preset(preset)
    run_dir = workdir / name
    ev_path = run_dir / "bench-events.jsonl"
    P.prepare_run(run_dir, task, synth, filters, overwrite=True)
    ev_path.unlink(missing_ok=True)
    t0, c0 = time.time(), time.process_time()
    report = P.synthesize(run_dir, task, synth, gen, events=EventLog(ev_path))
    wall, cpu = time.time() - t0, time.process_time() - c0
    times = stage_times(read_events(ev_path))
    times["filter_and_dataset"] = round(wall - times.get("inputs", 0) - times.get("annotate", 0),
                                        1)
    out = {"task": name, "preset": preset, "rounds": synth.rounds,
           "preset_rounds": full.rounds, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
           **times,
           "candidates": report["candidates"], "kept": report["kept"],
           "funnel": {s["step"]: s["remaining"] for s in report["funnel"]},
           "labels": report["labels"], "strategies": report["strategies"],
           "vote_share": report["vote_share"],
           "diagnostics": [d["code"] for d in report["diagnostics"]]}
    if report["strategies"]:
        from selfguide.methods.selfguide import filters as F

        df = P.load_candidates(run_dir)
        for strat in ("vote", "calibrated", "target", "agree"):
            cfg = F.FilterConfig(label_strategy=strat, seed=seed)
            o = F.apply(df.drop(columns=[c for c in df.columns if c.startswith("f_")]
                                + ["label", "drop_reason", "kept"]), cfg, task)
            out.setdefault("kept_by_strategy", {})[strat] = dict(
                Counter(o.loc[o["kept"], "label"]))
    return out


def label_probe(name: str, gen, n: int, seed: int, n_samples: int = 5,
                chat: bool = False) -> dict:
    """Accuracy of vote / log-prob / calibrated labelling on n real held-out inputs.

    ``chat=False`` is the ``plain`` labelling protocol (the pipeline's default before
    ``label_protocol``): continuation after ``Output:``, options scored with a leading
    space. ``bench/labels.py`` measures the pipeline's own choice.
    """
    from selfguide.settings.fields import SamplingConfig
    from selfguide.methods.selfguide.consistency import vote_samples
    from selfguide.methods.selfguide.strategies import calibrated_labels
    from selfguide.task.prompts import task_prompt
    from selfguide.task.formats import load_task

    task = load_task(NIV2 / f"{name}.json")
    rows = random.Random(seed).sample(list(task.test), n)
    prompts = [task_prompt(task, r.input) for r in rows]
    gold = [r.outputs[0] for r in rows]
    t0 = time.time()
    samples = gen.generate(prompts, SamplingConfig(temperature=0.3, max_new_tokens=6,
                                                   stop=("\n",), seed=seed), n_samples,
                           chat=chat)
    votes = [vote_samples(s, task.labels).output for s in samples]
    options = [lab if chat else " " + lab for lab in task.labels]
    scores = gen.score_options(prompts, options, chat=chat)
    cal, _ = calibrated_labels(scores, list(task.labels))
    raw = [task.labels[max(range(len(s)), key=lambda j: s[j])] for s in scores]

    def acc(pred):
        return round(sum(p == g for p, g in zip(pred, gold)) / len(gold), 3)

    def top(pred):
        return dict(Counter(pred).most_common(4))
    return {"task": name, "n": n, "chat": chat, "seconds": round(time.time() - t0, 1),
            "gold": dict(Counter(gold)),
            "vote": {"accuracy": acc(votes), "labels": top(votes)},
            "logprob": {"accuracy": acc(raw), "labels": top(raw)},
            "calibrated": {"accuracy": acc(cal), "labels": top(cal)},
            "majority_baseline": round(max(Counter(gold).values()) / len(gold), 3)}


def time_filters(n: int = 5000, repeats: int = 5) -> dict:
    """Median seconds of filters.apply (near-duplicate scores cached) on n candidates."""
    import pandas as pd

    from selfguide.methods.selfguide.config import FilterConfig
    from selfguide.methods.selfguide.filters import apply, ensure_near_duplicate_scores
    from selfguide.task.spec import Demo, TaskSpec

    task = TaskSpec("b", "Classify.", (Demo("a good film to watch", "pos"),
                                        Demo("a bad film to skip", "neg")),
                    task_type="classification", labels=("pos", "neg"), metric="exact_match")
    r = random.Random(0)
    words = ["good", "bad", "film", "movie", "plot", "cast", "great", "awful", "fine", "slow", "fast", "fun", "dull"]
    rows = []
    for i in range(n):
        lab = r.choice(["pos", "neg"])
        rows.append({"id": f"r{i // 10:03d}-p{i % 10:03d}", "method": "selfguide",
                     "round": i // 10, "prompt_id": i % 10, "target_label": lab, "raw": "",
                     "input": " ".join(r.choice(words) for _ in range(r.randint(2, 9))),
                     "samples": [lab] * 5, "votes": "{}", "vote_share": r.random(),
                     "output": lab, "label_vote": r.choice([lab, "pos", "neg", ""]),
                     "label_scores": [-r.random(), -r.random()]})
    t0 = time.time()
    df = ensure_near_duplicate_scores(pd.DataFrame(rows), task)
    nd = time.time() - t0
    out = {}
    for strat in ("vote", "calibrated"):
        ts, cpu = [], []
        for k in range(repeats):
            t0, c0 = time.time(), time.process_time()
            apply(df, FilterConfig(label_strategy=strat, min_frequency=0.1 * k), task)
            ts.append(time.time() - t0)
            cpu.append(time.process_time() - c0)
        out[f"apply_{strat}_ms"] = round(1000 * sorted(ts)[len(ts) // 2], 1)
        # CPU time is what an idle machine would take as wall time (single-threaded code)
        out[f"apply_{strat}_cpu_ms"] = round(1000 * sorted(cpu)[len(cpu) // 2], 1)
    out["near_duplicate_scores_once_s"] = round(nd, 2)
    out["n"] = n
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["task1529", "task1345"])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label-probe", type=int, default=24,
                    help="Real held-out inputs for the labelling-accuracy probe (0 = skip).")
    ap.add_argument("--skip-synthesis", action="store_true")
    ap.add_argument("--filters-only", action="store_true", help="Only time filters.apply.")
    ap.add_argument("--rounds", type=int, default=None,
                    help="Run only this many rounds of the preset (to extrapolate on a busy "
                         "machine); default: the preset's.")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = keep).")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "synthesis.json"))
    args = ap.parse_args()

    from selfguide import backends
    from selfguide.settings.fields import ModelConfig

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results: dict = {"filters": time_filters()}
    print(json.dumps(results["filters"]), flush=True)
    if args.filters_only:
        return 0
    t0 = time.time()
    gen = backends.get_generator("hf", config=ModelConfig())
    results["model_load_s"] = round(time.time() - t0, 1)
    results["load_average"] = list(__import__("os").getloadavg())
    work = Path(tempfile.mkdtemp(prefix="sg-bench-"))
    for name in args.tasks:
        if not args.skip_synthesis:
            r = run_task(name, gen, args.preset, work, args.seed, args.rounds)
            results.setdefault("runs", []).append(r)
            print(json.dumps(r), flush=True)
        if args.label_probe and (NIV2 / f"{name}.json").exists():
            from selfguide.task.formats import load_task

            if load_task(NIV2 / f"{name}.json").is_classification:
                for chat in (False, True):
                    p = label_probe(name, gen, args.label_probe, args.seed, chat=chat)
                    results.setdefault("label_probe", []).append(p)
                    print(json.dumps(p), flush=True)
    results["load_average_end"] = list(__import__("os").getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
