"""Stage-1 prompt forms: does the model write inputs of the label it is asked for?

For each classification task, ``--per`` stage-1 prompts per label in each form
(``input_prompt`` = ``mixed``: every demo after its answer, ending with the target answer;
``by_label``: a list of inputs whose answer is the target), no earlier generated inputs
shown (round 0), sampled as the quick preset samples stage 1 (T 1.0, top-p 0.95). Each
new input is then labelled as stage 2 would, as plain text (``rank``: the likeliest label;
``calibrated``: minus each label's mean score), and the share that agrees with the label
asked for is printed: evidence a user has (no references), and on topics the plain/rank
labeller is 0.93 accurate on real held-out headlines (bench/README.md "Labels").

Usage: python bench/stage1_forms.py [--tasks examples/topics.json,...] [--per 12]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "niv2-dev"
DEFAULT = [REPO / "examples" / "topics.json", REPO / "examples" / "sentiment.json",
           DATA / "task199.json", DATA / "task1529.json"]


def main() -> int:
    from selfguide import backends
    from selfguide.settings.fields import ModelConfig, SamplingConfig
    from selfguide.methods.selfguide import labelling
    from selfguide.methods.selfguide.config import INPUT_PROMPTS
    from selfguide.methods.selfguide.prompts import input_generation_prompt
    from selfguide.task.parsing import parse_input
    from selfguide.task.formats import load_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(str(p) for p in DEFAULT))
    ap.add_argument("--per", type=int, default=12, help="Prompts per label and form.")
    a = ap.parse_args()
    gen = backends.get_generator("hf", config=ModelConfig())
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print("| task | form | inputs | distinct | agreement rank | agreement calibrated | "
          "rank labels | seconds |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    results = []
    for path in [p for p in a.tasks.split(",") if p]:
        if not Path(path).is_file():
            print(f"skipping {path}: not found", flush=True)
            continue
        task = load_task(path)
        targets = [y for y in task.labels for _ in range(a.per)]
        for form in INPUT_PROMPTS:
            t0 = time.time()
            prompts = [input_generation_prompt(task, (), y, form=form) for y in targets]
            s = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=48, seed=1,
                               stop=labelling.STOPS)
            texts = [parse_input(o[0]) for o in gen.generate(prompts, s, 1, chat=False)]
            ok = [(x, y) for x, y in zip(texts, targets) if x]
            recs = labelling.annotate(task, [x for x, _ in ok], gen, "plain",
                                      SamplingConfig(temperature=0.0, max_new_tokens=1), 1)
            labs = labelling.self_labels(task, recs)
            agree = {k: sum(lab == y for lab, (_, y) in zip(labs[k], ok)) / max(1, len(ok))
                     for k in ("rank", "calibrated")}
            r = {"task": Path(path).stem, "form": form, "inputs": len(ok),
                 "distinct": len({x.lower() for x, _ in ok}), **agree,
                 "rank_labels": dict(Counter(labs["rank"])), "seconds": round(time.time() - t0)}
            results.append(r)
            print(f"| {r['task']} | {form} | {r['inputs']} | {r['distinct']} | "
                  f"{agree['rank']:.2f} | {agree['calibrated']:.2f} | "
                  f"{', '.join(f'{k} {v}' for k, v in r['rank_labels'].items())} | "
                  f"{r['seconds']} |", flush=True)
    out = REPO / "bench" / "results" / "stage1_forms.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"load": os.getloadavg()[0], "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
