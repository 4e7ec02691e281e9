"""CUDA smoke run for a lent GPU machine: synthesize -> train -> eval on the tiny Llama.

Builds the ~100 KB Llama of the tests in code (``tests/conftest.py`` ``build_tiny_model``;
no hub, no weights to carry), then through the CLI (in-process, ``selfguide.cli.main``):

1. ``synthesize`` a tiny paraphrase task on CUDA (bf16). A random tiny model may keep no
   row; then a fallback dataset is written from the task's sentences (said in the output),
   so training and evaluation still run;
2. ``train --method lora --precision bf16`` (LoRA on a bf16 base);
3. ``train --method qlora`` (4-bit NF4) when ``bitsandbytes`` imports and sees CUDA
   (skipped otherwise, said in the output);
4. ``eval`` of the LoRA run on held-out sentences.

Prints one line per stage (seconds, exit status, peak CUDA memory) and a JSON summary.
Run it with ``bash bench/gpu_smoke.sh run`` (which installs the carried wheels first).
It refuses to run without CUDA unless ``--allow-cpu`` (a dry run of the script itself).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tiny_model(path: Path) -> tuple[Path, list[str]]:
    spec = importlib.util.spec_from_file_location("_sg_tiny", ROOT / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # also: offline env, loopback-only sockets
    return mod.build_tiny_model(path), list(mod.TINY_SENTENCES)


def write_task(ws: Path, sentences: list[str]) -> tuple[Path, Path]:
    demos = [{"input": s, "output": " ".join(reversed(s.split()))} for s in sentences[:4]]
    task = ws / "tiny.json"
    task.write_text(json.dumps({"name": "tiny", "instruction": "paraphrase the question "
                                "with other words", "examples": demos}))
    test = ws / "test.jsonl"
    test.write_text("".join(json.dumps({"input": s, "output": " ".join(reversed(s.split()))})
                            + "\n" for s in sentences[4:]))
    return task, test


def stage(name: str, argv: list[str], results: dict) -> int:
    import torch

    from selfguide import cli

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    rc = cli.main(argv)
    secs = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    results[name] = {"rc": rc, "seconds": round(secs, 2), "peak_cuda_mib": round(peak, 1)}
    print(f"[smoke] {name}: rc={rc} {secs:.1f} s, peak CUDA memory {peak:.0f} MiB",
          flush=True)
    return rc


def fallback_dataset(ws: Path, run: str, sentences: list[str]) -> None:
    from selfguide.runs import store
    from selfguide.task.prompts import task_prompt
    from selfguide.task.formats import load_task

    task = load_task(ws / "tiny.json")
    rows = [{"id": f"f{i}", "prompt": task_prompt(task, s),
             "completion": " ".join(reversed(s.split()))}
            for i, s in enumerate(sentences * 4)]
    d = ws / "runs" / run / "dataset"
    d.mkdir(parents=True, exist_ok=True)
    store.atomic_write_text(d / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    print(f"[smoke] synthesis kept no row (random tiny model): wrote {len(rows)} fallback "
          "rows so that training and evaluation run", flush=True)


def nf4_available() -> str | None:
    try:
        import bitsandbytes  # noqa: F401
        import torch

        if not torch.cuda.is_available():
            return "no CUDA"
    except Exception as exc:  # noqa: BLE001 - any import failure means: skip NF4
        return f"bitsandbytes unavailable ({type(exc).__name__}: {exc})"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--allow-cpu", action="store_true")
    args = ap.parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.allow_cpu:
        print("no CUDA device visible (pass --allow-cpu for a dry run)", file=sys.stderr)
        return 1
    results: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                     "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                      time.gmtime())}
    ws = Path(tempfile.mkdtemp(prefix="sg-smoke-"))
    os.environ["SELFGUIDE_WORKSPACE"] = str(ws)
    model, sentences = tiny_model(ws / "tiny-model")
    task, test = write_task(ws, sentences)
    common = ["--model", str(model), "--device", device, "--precision", "bf16"]
    rc = stage("synthesize", ["synthesize", str(task), "--run", "smoke", "--rounds", "2",
                              "--prompts-per-round", "16", "--n-samples", "3", *common],
               results)
    if rc != 0 or not (ws / "runs" / "smoke" / "dataset" / "train.jsonl").is_file():
        fallback_dataset(ws, "smoke", sentences)
        results["synthesize"]["fallback_dataset"] = True
    train = ["--max-steps", str(args.steps), "--batch-size", "8", "--epochs", "1",
             "--force", "true", "--val-fraction", "0"]
    shutil.copytree(ws / "runs" / "smoke", ws / "runs" / "smoke4")
    stage("train_lora_bf16", ["train", "--run", "smoke", "--method", "lora",
                              "--precision", "bf16", *train], results)
    why = nf4_available()
    if why is None:
        stage("train_qlora_nf4", ["train", "--run", "smoke4", "--method", "qlora", *train],
              results)
    else:
        results["train_qlora_nf4"] = {"skipped": why}
        print(f"[smoke] train_qlora_nf4: skipped ({why})", flush=True)
    stage("eval", ["eval", "--run", "smoke", "--test", str(test), "--max-new-tokens", "12"],
          results)
    print(json.dumps(results, indent=1))
    ok = all(v.get("rc", 0) == 0 for v in results.values() if isinstance(v, dict))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
