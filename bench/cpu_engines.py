"""CPU inference paths side by side on the same model and prompts (issue 33).

The two workloads of ``bench/anchors.py`` (task1529: 72 stage-1 prompts, T 0.7, up to 128
new tokens; 72 labelling prompts x 5 samples, T 0.3, 8 new tokens) through:

- **ours fp32 / bf16** (``--precision``): the product's backend (``HFGenerator``: shared
  prefix once, finished rows leave the batch, samples share rows);
- **ours int8-dyn**: the same backend with every ``nn.Linear`` replaced by torch's dynamic
  int8 quantization (FBGEMM kernels: int8 weights, activations quantized per call);
- **CTranslate2 int8 / fp32** (``--ct2 DIR``: a ``ct2-transformers-converter`` folder of the
  same checkpoint): ``Generator.generate_batch`` at the same batch size, the shared
  instruction prefix as ``static_prompt`` (computed once), ``num_hypotheses`` samples.

``--isa avx2`` restricts every library to AVX2 (as ``bench/anchors.py``; CTranslate2 through
``CT2_FORCE_CPU_ISA``). Prints wall seconds, generated tokens and tok/s per engine, one
after the other in one process, with the 1-min load before each, and the greedy agreement
of each path with ours fp32 on the first ``--agree`` labelling prompts (8 new tokens).
Bench only: needs ``ctranslate2`` importable for the CT2 rows (else they are skipped).

Usage: python bench/cpu_engines.py [--isa native|avx2] [--ct2 DIR] [--prompts 72]
       [--engines fp32,int8-dyn,ct2-int8] [--workloads stage1,label] [--agree 72]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results" / "cpu_engines.json"


def ours_engine(precision: str, int8: bool):
    import torch

    from selfguide.backends.hf import HFGenerator
    from selfguide.models.loading import load_model
    from selfguide.settings.fields import ModelConfig

    lm = load_model(ModelConfig(model="embedded", precision=precision))
    if int8:
        from torch.ao.quantization import quantize_dynamic

        lm.model = quantize_dynamic(lm.model, {torch.nn.Linear}, dtype=torch.qint8)
    return lm, HFGenerator.from_loaded(lm)


def run_ours(gen, prompts, chat, s, n) -> dict:
    t = time.perf_counter()
    outs = gen.generate(prompts, s, n, chat=chat)
    return {"seconds": time.perf_counter() - t, "generated": gen.stats["generated_tokens"],
            "texts": [o[0] for o in outs]}


def run_ct2(ct2, tok, prompts, chat, s, n, batch: int) -> dict:
    from selfguide.backends.decoding import common_prefix
    from selfguide.backends.rendering import render_prompt

    ids = [tok(render_prompt(tok, p, chat), add_special_tokens=False)["input_ids"]
           for p in prompts]
    p = common_prefix(ids) if len(ids) > 1 else 0
    static = tok.convert_ids_to_tokens(ids[0][:p]) if p >= 8 else None
    toks = [tok.convert_ids_to_tokens(x[p:] if static else x) for x in ids]
    greedy = s.temperature == 0
    kw = dict(max_length=s.max_new_tokens, include_prompt_in_result=False,
              num_hypotheses=n, return_scores=False, max_batch_size=batch,
              end_token=[tok.eos_token] + (["Ċ"] if "\n" in s.stop else []))
    if not greedy:
        kw |= dict(sampling_temperature=s.temperature, sampling_topp=s.top_p or 1.0,
                   sampling_topk=0)
    if static:
        kw["static_prompt"] = static
    t = time.perf_counter()
    res = ct2.generate_batch(toks, **kw)
    secs = time.perf_counter() - t
    gen = sum(len(seq) for r in res for seq in r.sequences_ids)
    texts = [tok.decode(r.sequences_ids[0], skip_special_tokens=True) for r in res]
    return {"seconds": secs, "generated": gen, "texts": texts}


def main() -> int:
    import anchors

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", default="native", choices=("native", "avx2"))
    ap.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    ap.add_argument("--ct2", default=str(ROOT / "workspace" / "ct2-smollm2-int8"))
    ap.add_argument("--engines", default="dense,int8-dyn,ct2-int8")
    ap.add_argument("--workloads", default="stage1,label")
    ap.add_argument("--prompts", type=int, default=72)
    ap.add_argument("--agree", type=int, default=72)
    a = ap.parse_args()
    if a.isa == "avx2":
        os.environ.setdefault("CT2_FORCE_CPU_ISA", "AVX2")
    anchors.restrict_isa(a.isa)

    from selfguide.settings.fields import SamplingConfig
    from selfguide.task.formats import load_task

    task = load_task(anchors.NIV2 / "task1529.json")
    res: dict = {"meta": {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                          "command": "python bench/cpu_engines.py " + " ".join(sys.argv[1:])}}
    greedy_ref = None
    for engine in a.engines.split(","):
        if engine.startswith("ct2"):
            try:
                import ctranslate2
            except ImportError:
                print(f"{engine}: skipped (ctranslate2 is not importable)")
                continue
            lm, gen = ours_engine("fp32", False)  # tokenizer + prompts only
            ct2 = ctranslate2.Generator(a.ct2, device="cpu", compute_type=engine[4:],
                                        intra_threads=os.cpu_count() or 2)
            runner = lambda p, c, s, n: run_ct2(ct2, lm.tokenizer, p, c, s, n, gen.batch_size)  # noqa: E731
        else:
            lm, gen = ours_engine(a.precision, engine == "int8-dyn")
            gen.generate(["warm up"], SamplingConfig(max_new_tokens=2))
            runner = lambda p, c, s, n: run_ours(gen, p, c, s, n)  # noqa: E731
        work = anchors.workloads(task, gen, a.prompts)
        res.setdefault("meta", {}).update(cpu=anchors.cpu_meta(), batch_size=gen.batch_size,
                                          dense_precision=lm.info.precision)
        for name in a.workloads.split(","):
            prompts, chat, s, n = work[name]
            before = anchors.load()
            r = runner(prompts, chat, s, n)
            r.pop("texts")
            r |= {"load_before": before, "gen_tok_s": round(r["generated"] / r["seconds"], 1)}
            res.setdefault(name, {})[engine] = r
            print(f"{name} {engine}: {json.dumps(r)}", flush=True)
        label_prompts = work["label"][0][: a.agree]
        g = runner(label_prompts, True, SamplingConfig(temperature=0.0, max_new_tokens=8), 1)
        texts = [t.strip() for t in g["texts"]]
        if greedy_ref is None:
            greedy_ref = texts
        same = sum(x == y for x, y in zip(texts, greedy_ref))
        res.setdefault("greedy_agreement", {})[engine] = f"{same}/{len(texts)}"
        print(f"greedy agreement {engine} vs {a.engines.split(',')[0]}: {same}/{len(texts)}",
              flush=True)
        del gen, lm
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
