"""Generation benchmark on the embedded model (SmolLM2-135M-Instruct), in one run:

A. Throughput: the backend (length-sorted, left-padded batches) vs a naive loop that calls
   ``model.generate`` once per prompt — 64 chat prompts of ~300 tokens, 64 new tokens,
   sampling (temperature 0.7). The naive loop is timed on a subset and extrapolated to all
   64 prompts (said in the output). Target: backend >= 4x the naive loop in tokens/s.
B. Self-consistency cost: n=10 vs n=1 samples on ~500-token prompts with 10-token outputs.
   The backend prefills each prompt once and repeats the KV cache; for comparison the
   ``num_return_sequences`` way (which repeats the prefill) is timed too.
   Target: n=10 <= 3x the time of n=1.

Prints the figures and ratios, stores them in ``bench/generation_results.json`` and renders
the table into ``bench/README.md`` under ``## Generation`` (other sections are kept).
``--part A|B`` runs one part (the other part's last stored result stays, with its own date
and load average). ``--quick`` runs a small smoke version and writes nothing unless
``--write`` is given.

Usage: ``python bench/generation.py [--quick] [--part all|A|B] [--precision bf16]``
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
    from selfguide.backends.rendering import encode_prompt

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

    from selfguide.backends.rendering import encode_prompt

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

    from selfguide.backends.rendering import encode_prompt

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


def part_a(gen, quick: bool, subset: int | None) -> dict:
    """Backend vs naive per-prompt loop (tokens/s)."""
    from selfguide.settings.fields import SamplingConfig

    n_prompts, p_len, new = (8, 300, 16) if quick else (64, 300, 64)
    subset = subset or (2 if quick else 8)
    prompts = make_prompts(gen, n_prompts, p_len, seed=1)
    plen = [len(gen_ids(gen, p)) for p in prompts]
    s = SamplingConfig(temperature=0.7, max_new_tokens=new, seed=0)
    gen.generate(prompts[:2], SamplingConfig(max_new_tokens=2), chat=True)  # warm-up
    t_backend, _ = timed(lambda: gen.generate(prompts, s, chat=True))
    tok_backend = gen.stats["generated_tokens"]
    t_sub, tok_sub = naive_loop(gen, prompts[:subset], new, 0.7, seed=0)
    r = {"n_prompts": n_prompts, "prompt_tokens": round(sum(plen) / len(plen)), "new": new,
         "t_backend": t_backend, "tok_backend": tok_backend, "rate_backend": tok_backend / t_backend,
         "subset": subset, "t_naive_subset": t_sub, "tok_naive_subset": tok_sub,
         "t_naive": t_sub * n_prompts / subset, "rate_naive": tok_sub / t_sub}
    r["speedup"] = r["rate_backend"] / r["rate_naive"]
    print(f"A. {n_prompts} prompts x ~{r['prompt_tokens']} tokens, {new} new tokens, sampling")
    print(f"   backend: {t_backend:.1f} s, {tok_backend} tokens, {r['rate_backend']:.1f} tok/s")
    print(f"   naive loop: {t_sub:.1f} s for {subset} prompts ({tok_sub} tokens, "
          f"{r['rate_naive']:.1f} tok/s) -> {r['t_naive']:.1f} s extrapolated to {n_prompts}")
    print(f"   speedup: {r['speedup']:.2f}x (target >= 4x)", flush=True)
    return r


def part_b(gen, quick: bool) -> dict:
    """n=10 vs n=1 samples per prompt (time)."""
    from selfguide.settings.fields import SamplingConfig

    nb, blen, bnew = (2, 500, 10) if quick else (8, 500, 10)
    prompts = make_prompts(gen, nb, blen, seed=2)
    s = SamplingConfig(temperature=0.7, max_new_tokens=bnew, seed=0)
    gen.generate(prompts[:1], SamplingConfig(max_new_tokens=2), chat=True)  # warm-up
    t1, _ = timed(lambda: gen.generate(prompts, s, n=1, chat=True))
    t10, _ = timed(lambda: gen.generate(prompts, s, n=10, chat=True))
    nrs_sub = 1
    t_nrs = num_return_sequences(gen, prompts[:nrs_sub], 10, bnew, seed=0) * nb / nrs_sub
    r = {"n_prompts": nb, "prompt_tokens": round(sum(len(gen_ids(gen, p)) for p in prompts) / nb),
         "new": bnew, "t1": t1, "t10": t10, "prefill10": gen.stats["prefill_seconds"],
         "ratio": t10 / t1, "nrs_subset": nrs_sub, "t_nrs": t_nrs, "ratio_nrs": t_nrs / t1}
    print(f"B. {nb} prompts x ~{r['prompt_tokens']} tokens, {bnew} new tokens")
    print(f"   n=1: {t1:.1f} s; n=10 (shared prefill): {t10:.1f} s (prefill "
          f"{r['prefill10']:.1f} s); ratio {r['ratio']:.2f}x (target <= 3x)")
    print(f"   n=10 via num_return_sequences (prefill repeated; timed on {nrs_sub} prompt, "
          f"extrapolated): {t_nrs:.1f} s = {r['ratio_nrs']:.2f}x n=1", flush=True)
    return r


def gen_ids(gen, prompt: str) -> list[int]:
    from selfguide.backends.rendering import encode_prompt

    return encode_prompt(gen.tokenizer, prompt, True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (a few minutes)")
    ap.add_argument("--part", choices=("all", "A", "B"), default="all",
                    help="run only part A or B (the README keeps the other part's last result)")
    ap.add_argument("--precision", default="bf16", choices=("bf16", "fp32", "4bit", "8bit"))
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--naive-subset", type=int, default=None,
                    help="prompts timed in the naive loop (extrapolated to all; default 8)")
    ap.add_argument("--write", dest="write", action="store_true", default=None,
                    help="write the table into bench/README.md (default unless --quick)")
    ap.add_argument("--no-write", dest="write", action="store_false")
    args = ap.parse_args(argv)
    write = (not args.quick) if args.write is None else args.write

    import torch

    from selfguide.backends import get_generator
    from selfguide.settings.fields import ModelConfig

    load = os.getloadavg()[0]
    gen = get_generator("hf", config=ModelConfig(model="embedded", precision=args.precision),
                        batch_size=args.batch_size)
    meta = {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_avg_1min": round(load, 1), "cpus": os.cpu_count(),
            "precision": gen.info.precision, "device": gen.info.device,
            "batch_size": gen.batch_size, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "quick": args.quick,
            "command": "python bench/generation.py " + " ".join(argv or sys.argv[1:])}
    print(f"model: {gen.info.summary()}; batch_size={gen.batch_size}, "
          f"torch threads={meta['threads']}, load avg={load:.1f}", flush=True)
    results = {}
    if args.part in ("all", "A"):
        results["A"] = {**meta, **part_a(gen, args.quick, args.naive_subset)}
    if args.part in ("all", "B"):
        results["B"] = {**meta, **part_b(gen, args.quick)}
    if write:
        write_results(results)
    return 0


RESULTS = ROOT / "bench" / "generation_results.json"


def write_results(new: dict) -> None:
    """Merge ``new`` parts into bench/generation_results.json and re-render the README."""
    from selfguide.runs.store import atomic_write_json, read_json

    results = {**(read_json(RESULTS, default={}) or {}), **new}
    atomic_write_json(RESULTS, results)
    render_readme(results)


def render_readme(results: dict) -> None:
    lines = ["## Generation", "",
             ("`python bench/generation.py` on the embedded SmolLM2-135M-Instruct (raw figures in "
             "`bench/generation_results.json`). The CPU here has 2 cores shared with other jobs: "
             "absolute times are noisy (see the load average per part), the ratios are what the "
             "targets are about."), "",
             "| part | measurement | setting | time | tokens/s | ratio | target |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    a, b = results.get("A"), results.get("B")
    if a:
        lines += [
            (f"| A | backend `generate` | {a['n_prompts']} prompts × ~{a['prompt_tokens']} tok, "
            f"{a['new']} new, T=0.7, batch {a['batch_size']} | {a['t_backend']:.1f} s | "
            f"{a['rate_backend']:.2f} | | |"),
            (f"| A | naive `model.generate` per prompt | same; timed on {a['subset']} prompts, "
            f"extrapolated to {a['n_prompts']} | {a['t_naive']:.1f} s | {a['rate_naive']:.2f} | "
            f"backend **{a['speedup']:.2f}×** | ≥ 4× |")]
    if b:
        lines += [
            (f"| B | n=1 | {b['n_prompts']} prompts × ~{b['prompt_tokens']} tok, {b['new']} new | "
            f"{b['t1']:.1f} s | | | |"),
            (f"| B | n=10, shared prefill | same | {b['t10']:.1f} s | | **{b['ratio']:.2f}×** n=1 "
            f"| ≤ 3× |"),
            (f"| B | n=10 via `num_return_sequences` (prefill repeated) | same; timed on "
            f"{b['nrs_subset']} prompt(s), extrapolated | {b['t_nrs']:.1f} s | | "
            f"{b['ratio_nrs']:.2f}× n=1 | (reference) |")]
    lines.append("")
    for part, r in (("A", a), ("B", b)):
        if r:
            lines.append(f"- part {part}: `{r['command'].strip()}`, {r['measured']}, "
                         f"{r['precision']} on {r['device']}, {r['threads']} torch threads, "
                         f"1-min load average {r['load_avg_1min']} on {r['cpus']} CPUs"
                         + (" (quick)" if r.get("quick") else "") + "."
                         + (f" {r['note']}" if r.get("note") else ""))
    replace_section("Generation", "\n".join(lines) + "\n")


def replace_section(title: str, section: str) -> None:
    """Put ``section`` (starting with ``## title``) into bench/README.md in place of the
    old one (or at the end); the other sections are kept."""
    from selfguide.runs.store import atomic_write_text

    path = ROOT / "bench" / "README.md"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    text = pattern.sub(lambda m: section + "\n", old) if pattern.search(old) else \
        old.rstrip("\n") + "\n\n" + section
    atomic_write_text(path, text)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
