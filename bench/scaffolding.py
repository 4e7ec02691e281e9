"""Prompt scaffolding in kept candidates: does any text of the stage-1 prompts survive
into a training input?

For each run folder given (``RUNS/<name>``, e.g. the runs ``bench/niv2.py`` and ``make
demo`` leave), reads ``candidates.parquet`` and counts the kept rows whose input contains a
marker or lead-in of the prompts: ``Input:``/``Output:``/``Answer:`` lines, ``Inputs
whose answer is …`` (and the model's variants ``Outputs``/``Examples`` … ``answer``/``label``
/``output``), ``Possible answers:`` and ``Background text:``. Prints one row per run and the
total (issue 40's acceptance: 0).

Usage: python bench/scaffolding.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MARKERS = re.compile(
    r"(?im)^\s*(?:input|output|answer)\s*[:：]"
    r"|\b(?:inputs?|outputs?|examples?)\s+whose\s+(?:answer|output|label)\s+is\b"
    r"|\bpossible answers\s*:|\bbackground text\s*:")


def count(run: Path) -> tuple[int, int, list[str]]:
    import pandas as pd

    df = pd.read_parquet(run / "candidates.parquet", columns=["input", "kept"])
    kept = df[df["kept"].astype(bool)]
    hits = [str(x) for x in kept["input"] if MARKERS.search(str(x))]
    return len(kept), len(hits), hits[:3]


def main() -> int:
    total_kept = total_hits = 0
    print("| run | kept candidates | with prompt scaffolding | examples |")
    print("| --- | --- | --- | --- |")
    for arg in sys.argv[1:]:
        run = Path(arg)
        if not (run / "candidates.parquet").is_file():
            print(f"| {run.name} | no candidates.parquet | | |")
            continue
        kept, hits, examples = count(run)
        total_kept, total_hits = total_kept + kept, total_hits + hits
        print(f"| {run.name} | {kept} | {hits} | {' / '.join(e[:60] for e in examples)} |")
    print(f"| total | {total_kept} | {total_hits} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
