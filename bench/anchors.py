"""Ours vs llama.cpp vs the naive transformers loop: the same prompts, in one run (issue 12).

Two workloads on the embedded SmolLM2-135M-Instruct, built from task1529 (NIv2 dev):

- **stage 1**: 72 stage-1 prompts as the pipeline writes them (``input_generation_prompt``,
  1-10 earlier inputs shown, an asked-for label each), plain text, T 0.7, top-p 0.95, up to
  128 new tokens, stage 1's stop strings;
- **labelling**: 72 inputs in the task prompt (``prompts.task_prompt``, chat template),
  5 samples each, T 0.3, 8 new tokens, stop at a newline (stage 2's vote).

Each runs through three engines, one after the other, in this process or a child:

- **ours**: the product's backend (``HFGenerator``, bf16 weights converted from the shipped
  GGUF, batched, shared prefix prefilled once, finished rows leave the batch): the code
  ``selfguide generate`` and the pipeline call, without the CLI's model load;
- **llama.cpp**: ``llama_cpp.Llama`` on the shipped Q4_1 GGUF itself, 2 threads, one
  stream (prompt after prompt, sample after sample; it reuses the KV cache of the common
  prefix of consecutive prompts), in a child of the bench venv (``make bench-anchors``);
  weight repacking into "extra buffer types" is off (its AMX path segfaults on the first
  multi-token batch on the AMX-reporting VM of 2026-12-03; set
  ``SELFGUIDE_BENCH_LLAMA_EXTRA_BUFTS=1`` to keep it);
- **naive**: ``model.generate`` on one prompt at a time (``num_return_sequences`` for the
  samples), timed on the first ``--naive`` prompts and extrapolated.

Prints generated tokens, generated tok/s, prompt tokens per second of wall time and wall
seconds per engine, and ours / llama.cpp, with the 1-min load average before each. Raw
figures: ``bench/results/anchors.json``. Bench only: never part of CI.

AVX2 on an AVX-512 machine (issue 33): ``--isa avx2`` runs the torch side restricted to
AVX2 without native bf16, as on most laptops: it starts itself again with
``ATEN_CPU_CAPABILITY=avx2`` (torch's own kernels), ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN),
``MKL_ENABLE_INSTRUCTIONS=AVX2`` (MKL's fp32 GEMM, which otherwise keeps its AVX-512 code),
``FBGEMM_ENABLE_INSTRUCTIONS=AVX2`` (FBGEMM's int8 kernels, which otherwise keep VNNI) and
``SELFGUIDE_CPU_BF16=0`` (so ``auto`` loads fp32). Pair it with a llama.cpp built without
AVX-512 (``--llama-python`` of a bench venv built with ``GGML_NATIVE=OFF GGML_AVX512=OFF``).
The CPU's flags and torch's capability are printed and recorded with the figures.

Usage: python bench/anchors.py [--llama-python workspace/bench-venv/bin/python]
       [--prompts 72] [--naive 4] [--workloads stage1,label] [--isa native|avx2]
       [--precision auto|bf16|fp32]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NIV2 = ROOT.parent / "shared" / "data" / "niv2-dev"
RESULTS = ROOT / "bench" / "results" / "anchors.json"

CHILD = r"""
import json, sys, time
import llama_cpp.llama_cpp as lc
req = json.load(sys.stdin)
if not req.get("extra_bufts"):
    # llama.cpp's AMX weight repacking (an "extra buffer type", on by default where the CPU
    # reports AMX) segfaults on the first multi-token batch on this VM: plain CPU buffers
    _defaults = lc.llama_model_default_params
    def _params():
        p = _defaults()
        p.use_extra_bufts = False
        return p
    lc.llama_model_default_params = _params
from llama_cpp import Llama
llm = Llama(model_path=req["gguf"], n_ctx=2048, n_threads=2, n_threads_batch=2,
            verbose=False, seed=req["seed"])
llm.create_completion("warm up", max_tokens=2)
gen = prompt = 0
t0 = time.time()
for p in req["prompts"]:
    for k in range(req["n"]):
        r = llm.create_completion(p, max_tokens=req["max_tokens"], temperature=req["t"],
                                  top_p=req["top_p"], stop=req["stop"], seed=req["seed"] + k)
        gen += r["usage"]["completion_tokens"]
        prompt += r["usage"]["prompt_tokens"]
json.dump({"seconds": time.time() - t0, "generated": gen, "prompt_tokens": prompt},
          sys.stdout)
"""


AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2", "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
            "SELFGUIDE_CPU_BF16": "0"}


def restrict_isa(isa: str) -> None:
    """Start this script again with the torch side restricted to ``isa`` (the variables
    must be set before torch and its libraries load)."""
    if isa == "avx2" and any(os.environ.get(k) != v for k, v in AVX2_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ENV})


def cpu_meta() -> dict:
    """What the figures ran on: the CPU's SIMD flags and what torch dispatches to."""
    import torch

    from selfguide.models import hardware

    flags = hardware.cpu_flags()
    simd = sorted(f for f in flags if f.startswith(("avx", "amx")) or f in ("fma", "f16c"))
    return {"cpu_flags": simd, "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "restricted": {k: os.environ[k] for k in AVX2_ENV if k in os.environ},
            "bf16_native": hardware.bf16_is_fast("cpu")}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def workloads(task, gen, k: int) -> dict:
    """name -> (prompts, chat, SamplingConfig, n)."""
    from selfguide.settings.fields import SamplingConfig
    from selfguide.methods.selfguide.labelling import sampling_for
    from selfguide.methods.selfguide.prompts import input_generation_prompt, sample_generated
    from selfguide.methods.selfguide.stages import STOPS
    from selfguide.task.prompts import task_prompt

    rng = random.Random(0)
    rows = list(task.test)
    pool = [(r.input, r.outputs[0]) for r in rows[100:200]]
    stage1 = [input_generation_prompt(task, sample_generated(pool, rng, 1, 10),
                                      rng.choice(task.labels), form="by_label")
              for _ in range(k)]
    label = [task_prompt(task, r.input) for r in rows[:k]]
    return {"stage1": (stage1, False, SamplingConfig(temperature=0.7, top_p=0.95, stop=STOPS,
                                                     max_new_tokens=128, seed=1), 1),
            "label": (label, True, sampling_for(task, gen, temperature=0.3, max_new_tokens=8), 5)}


def ours(gen, prompts, chat, s, n) -> dict:
    from selfguide.backends.rendering import render_prompt

    tok = gen.tokenizer
    ptoks = sum(len(tok(render_prompt(tok, p, chat), add_special_tokens=False)["input_ids"])
                for p in prompts) * n
    t = time.perf_counter()
    gen.generate(prompts, s, n, chat=chat)
    secs = time.perf_counter() - t
    return {"seconds": secs, "generated": gen.stats["generated_tokens"], "prompt_tokens": ptoks}


def naive(lm, prompts, chat, s, n) -> dict:
    import torch

    from selfguide.backends.rendering import render_prompt

    tok, model = lm.tokenizer, lm.model
    gen = prompt = 0
    t = time.perf_counter()
    for p in prompts:
        ids = tok(render_prompt(tok, p, chat), return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, do_sample=True, temperature=s.temperature,
                                 top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                                 num_return_sequences=n, stop_strings=list(s.stop) or None,
                                 tokenizer=tok, pad_token_id=tok.pad_token_id or tok.eos_token_id)
        new = out[:, ids["input_ids"].shape[1]:]
        gen += int((new != (tok.pad_token_id or tok.eos_token_id)).sum())
        prompt += ids["input_ids"].shape[1] * n
    return {"seconds": time.perf_counter() - t, "generated": gen, "prompt_tokens": prompt}


def llama_cpp(py: str, gguf: str, tok, prompts, chat, s, n) -> dict:
    from selfguide.backends.rendering import render_prompt

    req = {"gguf": gguf, "prompts": [render_prompt(tok, p, chat) for p in prompts], "n": n,
           "max_tokens": s.max_new_tokens, "t": s.temperature, "top_p": s.top_p,
           "stop": list(s.stop), "seed": 1,
           "extra_bufts": os.environ.get("SELFGUIDE_BENCH_LLAMA_EXTRA_BUFTS") == "1"}
    p = subprocess.run([py, "-c", CHILD], input=json.dumps(req), text=True,
                       capture_output=True, check=False)
    if p.returncode != 0:
        raise SystemExit(f"llama.cpp child failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return json.loads(p.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-python", default=str(ROOT / "workspace" / "bench-venv" / "bin"
                                                   / "python"))
    ap.add_argument("--prompts", type=int, default=72)
    ap.add_argument("--naive", type=int, default=4, help="prompts the naive loop is timed on")
    ap.add_argument("--workloads", default="stage1,label")
    ap.add_argument("--isa", default="native", choices=("native", "avx2"),
                    help="avx2: the torch side restricted to AVX2, no native bf16 (issue 33)")
    ap.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                    help="ours: the weights' precision (auto: bf16 where native, else fp32)")
    a = ap.parse_args()
    restrict_isa(a.isa)
    if not Path(a.llama_python).exists():
        raise SystemExit(f"no bench venv at {a.llama_python}: run make bench-anchors first")

    from selfguide.backends.hf import HFGenerator
    from selfguide.settings.fields import ModelConfig, SamplingConfig
    from selfguide.models.ref import embedded_gguf
    from selfguide.models.loading import load_model
    from selfguide.task.formats import load_task

    lm = load_model(ModelConfig(model="embedded", precision=a.precision))
    gen = HFGenerator.from_loaded(lm)
    gen.generate(["warm up"], SamplingConfig(max_new_tokens=2))
    gguf = str(embedded_gguf())
    task = load_task(NIV2 / "task1529.json")
    work = workloads(task, gen, a.prompts)
    meta = {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpus": os.cpu_count(), "gguf": Path(gguf).name, "prompts": a.prompts,
            "naive_prompts": a.naive, "batch_size": gen.batch_size,
            "precision": lm.info.precision, **cpu_meta(),
            "command": "python bench/anchors.py " + " ".join(sys.argv[1:])}
    res: dict = {"meta": meta}
    for name in a.workloads.split(","):
        prompts, chat, s, n = work[name]
        res[name] = {}
        for engine in ("ours", "llama.cpp", "naive"):
            before = load()
            if engine == "ours":
                r = ours(gen, prompts, chat, s, n)
            elif engine == "llama.cpp":
                r = llama_cpp(a.llama_python, gguf, lm.tokenizer, prompts, chat, s, n)
            else:
                r = naive(lm, prompts[: a.naive], chat, s, n)
                scale = len(prompts) / max(a.naive, 1)
                r = {k: v * scale for k, v in r.items()} | {"extrapolated_from": a.naive}
            r |= {"load_before": before, "load_after": load(),
                  "gen_tok_s": round(r["generated"] / r["seconds"], 1),
                  "prompt_tok_s": round(r["prompt_tokens"] / r["seconds"], 1)}
            res[name][engine] = r
            print(f"{name} {engine}: {json.dumps(r)}", flush=True)
        res[name]["ours_vs_llama_cpp_wall"] = round(
            res[name]["llama.cpp"]["seconds"] / res[name]["ours"]["seconds"], 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1))
    print(table(res))
    return 0


def table(res: dict) -> str:
    m = res["meta"]
    isa = m.get("torch_capability", "?") + (" (restricted)" if m.get("restricted") else "")
    out = [f"\n{m['measured']}, {m['cpus']} CPUs, {m['prompts']} prompts per workload "
           f"(naive: {m['naive_prompts']}, extrapolated), ours at batch {m['batch_size']}, "
           f"{m.get('precision', 'bf16')}, torch {isa}; CPU flags: "
           f"{' '.join(m.get('cpu_flags', []))}\n",
           "| workload | engine | wall s | generated tokens | generated tok/s | prompt tok/s "
           "| load before | ours vs it (wall) |", "| --- " * 8 + "|"]
    for name in ("stage1", "label"):
        if name not in res:
            continue
        ours_s = res[name]["ours"]["seconds"]
        for engine in ("ours", "llama.cpp", "naive"):
            r = res[name][engine]
            ratio = "" if engine == "ours" else f"{r['seconds'] / ours_s:.2f}x"
            out.append(f"| {name} | {engine} | {r['seconds']:.1f} | {r['generated']:.0f} | "
                       f"{r['gen_tok_s']} | {r['prompt_tok_s']} | {r['load_before']} | {ratio} |")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
