"""Benchmark: selfguide.evaluation.rouge vs rouge-score on the Self-Instruct near-duplicate check.

N candidates are each compared with a pool of N instructions (default 2,000 x 2,000 =
4 M pairs). Texts are real instruction-like sentences: the NIv2 dev tasks' definitions,
questions and sentences (../shared/data/niv2-dev) plus our seed instructions, sampled
with a fixed seed (candidates and pool are independent samples, so some overlap).
rouge-score runs on a random sample of pairs and is extrapolated.
Also times the sequential path the bootstrap loop uses (RougeIndex.nearest + add).

Usage: python bench/rouge.py [--n 2000] [--sample-pairs 20000] [--workers -1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from selfguide.evaluation.predict import rouge  # noqa: E402
def load_texts(data_dir: Path) -> list[str]:
    texts: set[str] = set()
    for f in sorted(data_dir.glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        for s in d["Definition"]:
            texts.update(x.strip() for x in re.split(r"(?<=[.?!])\s+", s) if x.strip())
        for inst in d["Instances"]:
            for field in [inst["input"], *inst["output"]]:
                for line in re.split(r"\n|(?<=[.?!])\s+", field):
                    line = re.sub(r"^\w+:\s*", "", line.strip())
                    if 3 <= len(line.split()) <= 60:
                        texts.add(line)
    seed = REPO / "selfguide" / "data" / "seed_tasks.jsonl"
    for line in seed.read_text(encoding="utf-8").splitlines():
        if line.strip():
            texts.add(json.loads(line)["instruction"])
    return sorted(texts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--sample-pairs", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=-1)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "niv2-dev"))
    args = ap.parse_args()

    from rouge_score import rouge_scorer

    texts = load_texts(Path(args.data))
    rng = random.Random(0)
    if len(texts) < args.n:
        raise SystemExit(f"only {len(texts)} distinct texts; lower --n")
    # Two independent samples: some candidates also appear in the pool (score 1.0), as
    # when a model repeats an instruction it was shown.
    cands, pool = rng.sample(texts, args.n), rng.sample(texts, args.n)
    picked = cands + pool
    words = sum(len(t.split()) for t in picked) / len(picked)
    pairs = args.n * args.n
    print(f"{args.n} candidates x {args.n} pool = {pairs:,} pairs; "
          f"{len(texts)} distinct texts, mean {words:.1f} words; cpus={os.cpu_count()}")

    # Ours, cold caches (tokenizing is part of the cost).
    rouge.tokenize.cache_clear()
    rouge._encode.cache_clear()
    t0 = time.perf_counter()
    ours = rouge.max_scores(cands, pool, workers=args.workers)
    t_ours = time.perf_counter() - t0

    # The loop's path: one query at a time against a growing pool (single worker).
    rouge.tokenize.cache_clear()
    rouge._encode.cache_clear()
    t0 = time.perf_counter()
    ix = rouge.RougeIndex(pool)
    for c in cands:
        ix.nearest(c)
    t_seq = time.perf_counter() - t0

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    sample = [(rng.randrange(args.n), rng.randrange(args.n)) for _ in range(args.sample_pairs)]
    t0 = time.perf_counter()
    for i, j in sample:
        scorer.score(pool[j], cands[i])
    t_ref_sample = time.perf_counter() - t0
    t_ref = t_ref_sample / len(sample) * pairs

    # Spot check: our max equals rouge-score's max for a few candidates (full rows).
    for i in rng.sample(range(args.n), 3):
        best = max(scorer.score(p, cands[i])["rougeL"].fmeasure for p in pool)
        assert abs(best - ours[i][0]) <= 1e-9, (i, best, ours[i])

    print(f"{'method':<44}{'seconds':>10}{'pairs/s':>14}")
    print(f"{'rouge-score (extrapolated from ' + str(len(sample)) + ' pairs)':<44}"
          f"{t_ref:>10.2f}{pairs / t_ref:>14,.0f}")
    print(f"{'selfguide.evaluation.rouge.max_scores (cdist)':<44}{t_ours:>10.2f}{pairs / t_ours:>14,.0f}")
    print(f"{'selfguide.evaluation.rouge.RougeIndex.nearest x N':<44}{t_seq:>10.2f}{pairs / t_seq:>14,.0f}")
    print(f"speed-up: {t_ref / t_ours:.0f}x (cdist), {t_ref / t_seq:.0f}x (sequential); "
          f"full {args.n}x{args.n} in {t_ours:.2f} s "
          f"({'OK' if t_ours < 5 and t_ref / t_ours >= 20 else 'MISSED'} target: <5 s, >=20x)")


if __name__ == "__main__":
    main()
