"""``selfguide export-model --run NAME --out DIR [--format gguf|safetensors] [--quant f16]``:
the run's merged model as a GGUF file + Ollama Modelfile, or a safetensors folder, each
with a model card. Nothing heavy is imported at load time."""

from __future__ import annotations

import argparse

NAME = "export-model"
HELP = ("Export the run's tuned model (adapter merged) as GGUF + Ollama Modelfile or "
        "safetensors, with a model card.")
ORDER = 61


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selfguide.export.gguf import QUANTS

    parser.add_argument("--run", required=True, help="Run name (in the workspace).")
    parser.add_argument("--out", required=True, help="New (or empty) output folder.")
    parser.add_argument("--format", choices=("gguf", "safetensors"), default="gguf",
                        help="gguf: one .gguf file (llama.cpp, Ollama, transformers) and a "
                             "Modelfile; safetensors: a Hugging Face model folder (bf16).")
    parser.add_argument("--quant", choices=QUANTS, default="f16",
                        help="GGUF tensor type: f16/bf16/f32 (lossless for a bf16 model "
                             "except f16's range), q8_0 (~half the size, near-lossless), "
                             "q5_*/q4_* (smaller, lossier). Norms stay f32.")
    parser.add_argument("--force", action="store_true",
                        help="Replace a non-empty --out folder (never a file or a symlink).")
    parser.add_argument("--verify", choices=("true", "false"), default="true",
                        help="Load the GGUF back with transformers and compare its logits "
                             "with the merged model on the run's first training prompts.")


def run(args: argparse.Namespace) -> int:
    from selfguide import jobs
    from selfguide.export.model import export_model
    from selfguide.runs import store
    from selfguide.runs.rundir import RunDir

    run_dir = store.resolve_run_dir(args.run, must_exist=True)
    jobs.check_inputs_idle(run_dir, NAME)
    RunDir(run_dir).check_inputs(NAME)
    with jobs.worker(run_dir, NAME) as events:
        events.emit("log", message=f"exporting {args.format} ({args.quant}) to {args.out}")
        s = export_model(run_dir, args.out, fmt=args.format, quant=args.quant,
                         force=args.force, verify=args.verify == "true")
    if args.format == "gguf":
        g = s["gguf"]
        print(f"wrote {s['path']}/{s['file']} ({g['arch']}, {s['quant']}, "
              f"{g['bytes'] / 2**20:.1f} MiB) and {s['path']}/Modelfile")
        v = s.get("verify")
        if v:
            print(f"verified with transformers: logits max abs diff {v['max_abs_diff']:.2e} "
                  f"(logit std {v['logit_std']:.2f}), top-1 agreement "
                  f"{100 * v['top1_agreement']:.1f}% over {v['prompts']} training prompts, "
                  f"tokenizer {'matches' if v['tokenizer_match'] else 'DIFFERS'}")
        print(f"run it: ollama create {args.run} -f {s['path']}/Modelfile && "
              f"ollama run {args.run}")
    else:
        print(f"merged model written to {s['path']}")
    return 0
