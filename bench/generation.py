"""Generation benchmark on the embedded model (SmolLM2-135M-Instruct), in one run:

A. Throughput: the backend (length-sorted, left-padded batches) vs a naive loop that calls
   ``model.generate`` once per prompt — 64 chat prompts of ~300 tokens, 64 new tokens,
   sampling (temperature 0.7). The naive loop is timed on a subset and extrapolated to all
   64 prompts (said in the output). Target: backend >= 4x the naive loop in tokens/s.
B. Self-consistency cost: n=10 vs n=1 samples on ~500-token prompts with 10-token outputs.
   The backend prefills each prompt once and repeats the KV cache; for comparison the
   ``num_return_sequences`` way (which repeats the prefill) is timed too.
   Target: n=10 <= 3x the time of n=1.

Prints the figures and ratios and writes the table into ``bench/README.md`` under
``## Generation`` (other sections are kept). ``--quick`` runs a small smoke version and
does not touch the README unless ``--write`` is given.

Usage: ``python bench/generation.py [--quick] [--precision bf16] [--write|--no-write]``
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = ["river", "mountain", "data", "model", "system", "language", "report", "village",
         "market", "science", "music", "history", "teacher", "student", "garden", "winter",
         "summer", "engine", "network", "signal", "ocean", "forest", "city", "policy",
         "energy", "health", "family", "travel", "book", "paper", "story", "question",
         "answer", "method", "result", "table", "figure", "value", "number", "color", "light",
         "sound", "water", "fire", "earth", "stone", "glass", "bridge", "road", "train",
         "station", "window", "door", "house", "kitchen", "table", "chair", "morning",
         "evening"]


def make_prompts(gen, count: int, target_tokens: int, seed: int) -> list[str]:
    """``count`` distinct chat prompts whose rendered length is about ``target_tokens``."""
    from selfguide.backends.hf import encode_prompt

    rng = random.Random(seed)
    prompts = []
    for i in range(count):
        words = [rng.choice(WORDS) for _ in range(target_tokens)]
        head = f"Document {i}: "
        lo, hi = 1, len(words)
        while lo < hi:  # longest prefix whose rendered prompt fits the target
            mid = (lo + hi + 1) // 2
            text = head + " ".join(words[:mid]) + "\nSummarize the document in one sentence."
            if len(encode_prompt(gen.tokenizer, text, True)) <= target_tokens:
                lo = mid
            else:
                hi = mid - 1
        prompts.append(head + " ".join(words[:lo]) + "\nSummarize the document in one sentence.")
    return prompts


def naive_loop(gen, prompts: list[str], max_new: int, temperature: float, seed: int
               ) -> tuple[float, int]:
    """One ``model.generate`` call per prompt (batch of 1, no padding). Returns (s, tokens)."""
    import torch

    from selfguide.backends.hf import encode_prompt

    eos = gen.eos_ids
    torch.manual_seed(seed)
    tokens = 0
    t = time.perf_counter()
    for p in prompts:
        ids = torch.tensor([encode_prompt(gen.tokenizer, p, True)], device=gen.device)
        with torch.inference_mode():
            out = gen.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                     do_sample=True, temperature=temperature, top_p=1.0,
                                     top_k=None, max_new_tokens=max_new,
                                     pad_token_id=gen.tokenizer.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        tokens += next((j for j, x in enumerate(new) if x in eos), len(new))
    return time.perf_counter() - t, tokens


def num_return_sequences(gen, prompts: list[str], n: int, max_new: int, seed: int) -> float:
    """transformers' built-in way: expands inputs n times *before* the prefill."""
    import torch

    from selfguide.backends.hf import encode_prompt

    torch.manual_seed(seed)
    t = time.perf_counter()
    for p in prompts:
        ids = torch.tensor([encode_prompt(gen.tokenizer, p, True)], device=gen.device)
        with torch.inference_mode():
            gen.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                               temperature=0.7, max_new_tokens=max_new, num_return_sequences=n,
                               pad_token_id=gen.tokenizer.pad_token_id)
    return time.perf_counter() - t


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (seconds)")
    ap.add_argument("--precision", default="bf16", choices=("bf16", "fp32", "4bit", "8bit"))
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--naive-subset", type=int, default=None,
                    help="prompts timed in the naive loop (extrapolated to all)")
    ap.add_argument("--write", dest="write", action="store_true", default=None,
                    help="write the table into bench/README.md (default unless --quick)")
    ap.add_argument("--no-write", dest="write", action="store_false")
    args = ap.parse_args(argv)
    quick = args.quick
    write = (not quick) if args.write is None else args.write

    import torch

    from selfguide.config import ModelConfig, SamplingConfig
    from selfguide.models import load_generator

    load = os.getloadavg()[0]

    gen = load_generator(ModelConfig(model="embedded", precision=args.precision, device="cpu"
                                     if not torch.cuda.is_available() else "auto"),
                         batch_size=args.batch_size)
    print(f"model: {gen.info.summary()}; batch_size={gen.batch_size}, "
          f"torch threads={torch.get_num_threads()}, load avg={load:.1f}", flush=True)

    # ---------------------------------------------------------------- A: throughput
    n_prompts, p_len, new = (8, 300, 16) if quick else (64, 300, 64)
    subset = args.naive_subset or (2 if quick else 8)
    prompts = make_prompts(gen, n_prompts, p_len, seed=1)
    plen = [len(gen.tokenizer(gen.tokenizer.apply_chat_template(
        [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True),
        add_special_tokens=False)["input_ids"]) for p in prompts]
    s = SamplingConfig(temperature=0.7, max_new_tokens=new, seed=0)
    gen.generate(prompts[:2], SamplingConfig(max_new_tokens=2), chat=True)  # warm-up
    t_backend, _ = timed(lambda: gen.generate(prompts, s, chat=True))
    tok_backend = gen.stats["generated_tokens"]
    t_naive_sub, tok_naive_sub = naive_loop(gen, prompts[:subset], new, 0.7, seed=0)
    t_naive = t_naive_sub * n_prompts / subset
    rate_b, rate_n = tok_backend / t_backend, tok_naive_sub / t_naive_sub
    speedup = rate_b / rate_n
    print(f"A. {n_prompts} prompts x ~{sum(plen) / len(plen):.0f} tokens, {new} new tokens, sampling")
    print(f"   backend: {t_backend:.1f} s, {tok_backend} tokens, {rate_b:.1f} tok/s")
    print(f"   naive loop: {t_naive_sub:.1f} s for {subset} prompts ({tok_naive_sub} tokens, "
          f"{rate_n:.1f} tok/s) -> {t_naive:.1f} s extrapolated to {n_prompts}")
    print(f"   speedup: {speedup:.2f}x (target >= 4x)", flush=True)

    # ---------------------------------------------------------------- B: n=10 vs n=1
    nb, blen, bnew = (2, 500, 10) if quick else (8, 500, 10)
    bprompts = make_prompts(gen, nb, blen, seed=2)
    sb = SamplingConfig(temperature=0.7, max_new_tokens=bnew, seed=0)
    t1, _ = timed(lambda: gen.generate(bprompts, sb, n=1, chat=True))
    t10, _ = timed(lambda: gen.generate(bprompts, sb, n=10, chat=True))
    prefill10 = gen.stats["prefill_seconds"]
    nrs_sub = 1 if quick else 2
    t_nrs = num_return_sequences(gen, bprompts[:nrs_sub], 10, bnew, seed=0) * nb / nrs_sub
    ratio = t10 / t1
    print(f"B. {nb} prompts x ~{blen} tokens, {bnew} new tokens")
    print(f"   n=1: {t1:.1f} s; n=10 (shared prefill): {t10:.1f} s (prefill {prefill10:.1f} s); "
          f"ratio {ratio:.2f}x (target <= 3x)")
    print(f"   n=10 via num_return_sequences (prefill repeated, per prompt, timed on {nrs_sub}, "
          f"extrapolated): {t_nrs:.1f} s = {t_nrs / t1:.2f}x n=1", flush=True)

    if write:
        write_readme(args, gen, locals())
    return 0


def write_readme(args, gen, v: dict) -> None:
    import torch

    from selfguide.store import atomic_write_text

    table = f"""## Generation

`python bench/generation.py` (embedded SmolLM2-135M-Instruct, {gen.info.precision}, device
{gen.info.device}, batch_size {gen.batch_size}, torch {torch.__version__}, {torch.get_num_threads()}
threads; measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 1-min load average at
start {v['load']:.1f} on a 2-core machine shared with other jobs — absolute numbers are noisy,
the ratios are what the targets are about).

| measurement | setting | time | tokens/s | ratio | target |
| --- | --- | --- | --- | --- | --- |
| backend `generate` | {v['n_prompts']} prompts × ~{sum(v['plen']) / len(v['plen']):.0f} tok, {v['new']} new, T=0.7 | {v['t_backend']:.1f} s | {v['rate_b']:.1f} | | |
| naive `model.generate` loop | same, timed on {v['subset']} prompts, extrapolated | {v['t_naive']:.1f} s | {v['rate_n']:.1f} | **{v['speedup']:.2f}×** faster | ≥ 4× |
| n=1 | {v['nb']} prompts × ~{v['blen']} tok, {v['bnew']} new | {v['t1']:.1f} s | | | |
| n=10, shared prefill | same | {v['t10']:.1f} s | | **{v['ratio']:.2f}×** n=1 | ≤ 3× |
| n=10, `num_return_sequences` | same, timed on {v['nrs_sub']}, extrapolated | {v['t_nrs']:.1f} s | | {v['t_nrs'] / v['t1']:.2f}× n=1 | (reference) |
"""
    path = ROOT / "bench" / "README.md"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Generation\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    new = pattern.sub(lambda m: table + "\n", old) if pattern.search(old) else \
        old.rstrip("\n") + "\n\n" + table
    atomic_write_text(path, new)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
