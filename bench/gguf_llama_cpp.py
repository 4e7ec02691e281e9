"""Does an exported GGUF run in llama.cpp and answer as the tuned model does in transformers?

Bench-only (issue 16): needs a Python with ``llama-cpp-python`` (the bench venv of
``make bench-server``; pass it with ``--llama-python``), never part of CI. For a run that
has been trained, evaluated and exported (``selfguide export-model --run NAME --out DIR``):

1. renders each evaluated held-out input with the project's prompt (``prompts.task_prompt``
   and the base tokenizer's chat template, exactly what ``selfguide eval`` feeds the tuned
   model), for the first ``--limit`` rows of ``eval/predictions.jsonl``;
2. has llama.cpp (``llama_cpp.Llama`` on the GGUF, greedy, stop at the end-of-turn token)
   answer each rendered prompt in a subprocess of ``--llama-python``;
3. prints how often llama.cpp's answer equals the tuned model's answer in transformers
   (``after`` in the predictions; first line, stripped), the exact match of both against the
   references, and llama.cpp's seconds per prompt; writes ``DIR/llama_cpp_check.json``.

Usage: python bench/gguf_llama_cpp.py --run demo --gguf DIR/demo-f16.gguf
       [--llama-python workspace/bench-venv/bin/python] [--limit 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, sys, time
from llama_cpp import Llama
req = json.load(sys.stdin)
llm = Llama(model_path=req["gguf"], n_ctx=req["n_ctx"], n_threads=req["threads"],
            verbose=False, seed=0)
outs, toks, t0 = [], 0, time.time()
for p in req["prompts"]:
    r = llm.create_completion(p, max_tokens=req["max_tokens"], temperature=0.0,
                              stop=req["stop"])
    outs.append(r["choices"][0]["text"])
    toks += r["usage"]["completion_tokens"]
json.dump({"outputs": outs, "tokens": toks, "seconds": time.time() - t0}, sys.stdout)
"""


def first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--gguf", required=True, help="The exported .gguf file.")
    ap.add_argument("--llama-python", default=str(REPO / "workspace" / "bench-venv" / "bin"
                                                   / "python"))
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=32)
    a = ap.parse_args()

    from transformers import AutoTokenizer

    from selfguide.models.adapters import read_adapter_manifest
    from selfguide.backends.rendering import render_prompt
    from selfguide.models.convert import checkpoint_dir
    from selfguide.models.ref import resolve_model
    from selfguide.task.prompts import task_prompt
    from selfguide.runs.rundir import RunDir

    run = RunDir.named(a.run, must_exist=True)
    task = run.read_task(required=True)
    rows = run.read_predictions()[: a.limit]
    if not rows:
        raise SystemExit(f"run {a.run} has no eval/predictions.jsonl: run selfguide eval first")
    man = read_adapter_manifest(run.adapter_dir)
    src = resolve_model(man.get("model") or man.get("base") or "embedded")
    tok = AutoTokenizer.from_pretrained(str(checkpoint_dir(src) or src.path))
    chat = bool(man.get("chat", True))
    prompts = [render_prompt(tok, task_prompt(task, r["input"]), chat) for r in rows]
    req = {"gguf": str(Path(a.gguf).resolve()), "prompts": prompts, "n_ctx": 2048,
           "threads": 2, "max_tokens": a.max_tokens,
           "stop": [s for s in (tok.eos_token, "<|im_end|>", "\n") if s]}
    t0 = time.time()
    p = subprocess.run([a.llama_python, "-c", CHILD], input=json.dumps(req), text=True,
                       capture_output=True, check=False)
    if p.returncode != 0:
        raise SystemExit(f"llama.cpp child failed ({p.returncode}):\n{p.stderr[-2000:]}")
    got = json.loads(p.stdout)
    same = sum(first_line(o) == first_line(r["after"]) for o, r in zip(got["outputs"], rows))
    em_cpp = sum(first_line(o).lower() in [x.strip().lower() for x in r["references"]]
                 for o, r in zip(got["outputs"], rows))
    em_hf = sum(first_line(r["after"]).lower() in [x.strip().lower() for x in r["references"]]
                for r in rows)
    res = {"run": a.run, "gguf": req["gguf"], "rows": len(rows), "chat": chat,
           "agree_with_transformers": same / len(rows), "exact_match_llama_cpp": em_cpp / len(rows),
           "exact_match_transformers": em_hf / len(rows),
           "llama_cpp_s_per_prompt": round(got["seconds"] / len(rows), 2),
           "wall_s": round(time.time() - t0, 1),
           "examples": [{"input": r["input"][:80], "transformers": first_line(r["after"]),
                         "llama_cpp": first_line(o)} for o, r in zip(got["outputs"][:5], rows)]}
    out = Path(a.gguf).resolve().parent / "llama_cpp_check.json"
    out.write_text(json.dumps(res, indent=1))
    print(f"{a.run}: llama.cpp loaded {Path(a.gguf).name} and answered {len(rows)} held-out "
          f"prompts; same answer as transformers {same}/{len(rows)}; exact match llama.cpp "
          f"{em_cpp}/{len(rows)} vs transformers {em_hf}/{len(rows)}; "
          f"{res['llama_cpp_s_per_prompt']} s per prompt (prefill + answer); written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
