"""Self-label quality on real held-out rows: what stage 2 would label, per protocol/strategy.

For each task (the shipped examples and the NIv2 dev tasks in ``../shared/data/niv2-dev``)
this runs ``selfguide label``'s code (``commands.label.evidence_run`` + ``label_rows``) with
the embedded model and the quick preset on a seeded sample of the task's held-out rows: for
a classification task the protocol and strategy are those of a SELF-GUIDE run of the task
(synthesized first, as ``selfguide label`` does: leave-one-out on the demos, agreement with
the asked-for label on the model's own inputs), for a generation task the demos choose;
then the references score every protocol x strategy. No held-out row enters the choice. Prints one markdown row per task with the
default choice, its accuracy, the majority-class share and the alternatives, and writes
``bench/results/labels.json``.

Usage: python bench/labels.py [--limit 60] [--tasks sentiment,task199]
       [--set n_samples=10 --set output_temperature=0.7] [--seed 0] [--out FILE]
       [--workspace DIR]  (the synthesized runs; reused by a second call)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "niv2-dev"


def main() -> int:
    from selfguide import backends
    from selfguide.commands.label import evidence_run, label_rows, read_inputs
    from selfguide.settings.fields import ModelConfig
    from selfguide.evaluation.predict import select_examples
    from selfguide.methods.selfguide.config import preset
    from selfguide.task.formats import load_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--tasks", default="")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="Override a synthesis setting of the preset (an ablation), e.g. "
                         "--set n_samples=10 --set output_temperature=0.7.")
    ap.add_argument("--seed", type=int, default=0, help="Synthesis seed of the runs.")
    ap.add_argument("--workspace", default=str(REPO / "workspace" / "bench-labels"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "labels.json"))
    a = ap.parse_args()
    paths = sorted((REPO / "examples").glob("*.json")) + sorted(DATA.glob("task*.json"))
    wanted = [t for t in a.tasks.split(",") if t]
    paths = [p for p in paths if not wanted or p.stem in wanted]
    os.environ["SELFGUIDE_WORKSPACE"] = a.workspace
    model = ModelConfig()
    gen = backends.get_generator("hf", config=model)
    synth, filters = preset(a.preset, synthesis={"seed": a.seed})
    if a.set:
        import dataclasses

        from selfguide.settings.fields import from_dict

        over = dict(kv.split("=", 1) for kv in a.set)
        synth = from_dict(type(synth), {**dataclasses.asdict(synth), **{
            k: type(getattr(synth, k))(v) for k, v in over.items()}})
    print(f"load average {os.getloadavg()[0]:.1f}; preset {a.preset} {' '.join(a.set)}; up "
          f"to {a.limit} rows per task", flush=True)
    print("| task | rows | default choice | metric | default | majority class | "
          "every protocol x strategy | seconds |\n| --- | --- | --- | --- | --- | --- | --- "
          "| --- |", flush=True)
    results = []
    for p in paths:
        task = load_task(p)
        rows = select_examples(read_inputs(p), a.limit, 12345)
        t0 = time.time()
        run = evidence_run(task, synth, filters, model, gen) if task.is_classification \
            else None
        res = label_rows(task, rows, gen, synth, filters, run_dir=run)
        secs = time.time() - t0
        d = [t for t in res["table"] if t["default"]][0]
        alts = "; ".join(f"{t['protocol']}/{t['strategy']} {t['value']:.2f}"
                         for t in res["table"])
        maj = "-" if res["majority"] is None else f"{res['majority']:.2f}"
        ch = res["choice"]
        shown = res["rows"][0]["protocol"] if res["rows"] else ch["protocol"]
        print(f"| {task.name} | {res['n']} | {shown}"
              f"{'/' + ch['strategy'] if ch.get('strategy') else ''}"
              f"{'' if ch.get('beats_chance') is not False else ' (nothing trusted)'} | "
              f"{res['metric']} | **{d['value']:.2f}** | {maj} | {alts} | {secs:.0f} |",
              flush=True)
        results.append({"task": task.name, "n": res["n"], "choice": ch, "table": res["table"],
                        "majority": res["majority"], "metric": res["metric"],
                        "seconds": round(secs, 1), "evidence": res["evidence"]})
    out = Path(a.out)
    out.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
