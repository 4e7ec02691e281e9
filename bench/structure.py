"""Stage-1 structure: do the new inputs keep the form the demos' inputs share?

For each task whose demos share a structure (``selfguide.task.structure``: field markers,
separators, a marked span, a line count), runs SELF-GUIDE's stage 1 alone with the
embedded model, the quick preset's sampling and ``--prompts`` prompts, once with
``input_template`` off (the prompt ends with an open ``Input:``) and once on (it ends with
the field marker every demo input starts with), same seed, and prints per setting: the
share of new inputs that carry the whole template, and of those that pass the other input
filters (noise, length, duplicates). Evidence a user has (no references are used).

Usage: python bench/structure.py [--tasks a.json,b.json] [--prompts 36]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "niv2-dev"
DEFAULT = [DATA / "task1529.json", DATA / "task199.json"]


def measure(task, generator, prompts: int, template_on: bool) -> dict:
    from selfguide.methods.selfguide.config import preset
    from selfguide.methods.selfguide.filters import apply, demo_template
    from selfguide.methods.context import StageContext
    from selfguide.methods.selfguide.stages import generate_inputs
    from selfguide.methods.selfguide.table import build_table

    synth, filters = preset("quick")
    rounds = max(1, prompts // synth.prompts_per_round)
    synth = dataclasses.replace(synth, rounds=rounds, min_inputs=0, max_rounds=0,
                                input_template=template_on)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        rows = generate_inputs(Path(tmp), task, synth, filters,
                               StageContext(generator, stream=None))
        secs = time.time() - t0
    template = demo_template(task)
    inputs = [r["input"] for r in rows]
    full = [template.score(x) >= 1.0 for x in inputs]
    no_structure = dataclasses.replace(filters, min_structure=0.0)
    table = apply(build_table(rows, {}, task), no_structure, task, stage="input")
    passing = [f for f, k in zip(full, table["kept"]) if k]
    return {"inputs": len(inputs), "carry": sum(full) / max(1, len(full)),
            "passing_other": len(passing), "carry_of_passing": sum(passing) / max(1, len(passing)),
            "seconds": round(secs, 1), "example": inputs[0][:160] if inputs else ""}


def main() -> int:
    from selfguide import backends
    from selfguide.methods.selfguide.filters import demo_template
    from selfguide.settings.fields import ModelConfig
    from selfguide.task.formats import load_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(str(p) for p in DEFAULT))
    ap.add_argument("--prompts", type=int, default=36)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    gen = backends.get_generator("hf", config=ModelConfig())
    results = {}
    print("| task | template | input_template | inputs | carry it | pass other filters | "
          "carry it among those | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in [Path(p) for p in a.tasks.split(",") if p]:
        task = load_task(path)
        template = demo_template(task)
        if template.empty:
            print(f"| {path.stem} | none | - | - | - | - | - | - |")
            continue
        for on in (False, True):
            r = measure(task, gen, a.prompts, on)
            results[f"{path.stem}:{'on' if on else 'off'}"] = r
            print(f"| {path.stem} | {template.describe()} | {'on' if on else 'off'} | "
                  f"{r['inputs']} | {r['carry']:.0%} | {r['passing_other']} | "
                  f"{r['carry_of_passing']:.0%} | {r['seconds']} |", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
