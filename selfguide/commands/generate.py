"""``selfguide generate``: sample completions from a model (a quick way to try a model).

Loads the model named by ``--model`` (default: the embedded SmolLM2), renders each prompt
with the chat template unless ``--no-chat``, and prints ``n`` completions per prompt to
stdout (``--json`` for one JSON object per prompt). Prompts come from ``--prompt`` (repeat
it) and/or ``--prompts-file`` (one prompt per line, or JSONL with a ``prompt`` field); a
progress bar goes to stderr. It does not write anything into a run directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from selfguide.errors import ConfigError
from selfguide.settings.fields import (
    ModelConfig,
    SamplingConfig,
    add_dataclass_args,
    from_dict,
    overrides_from_args,
    replace,
)

NAME = "generate"
HELP = "Generate completions for prompts with a model (try a model quickly)."
ORDER = 80


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt", "-p", action="append", default=[],
                        help="A prompt (repeat for several).")
    parser.add_argument("--prompts-file", type=Path, default=None,
                        help="A text file with one prompt per line, or JSONL with a 'prompt' field.")
    parser.add_argument("-n", type=int, default=1,
                        help="Completions per prompt (range 1..64; default 1).")
    parser.add_argument("--no-chat", action="store_true",
                        help="Send prompts as plain text (no chat template).")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="Sequences per batch (range 1..1024; default: 32 on CPU, 64 on "
                             "CUDA).")
    parser.add_argument("--json", action="store_true",
                        help="Print one JSON object per prompt: {prompt, completions}.")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="No progress bar or model summary on stderr.")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="Also say on stderr what was detected about the model: family, "
                             "chat or base, context length, decode path (fast or fallback, "
                             "and why), precision.")
    add_dataclass_args(parser, ModelConfig)
    add_dataclass_args(parser, SamplingConfig)


def read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt or [])
    if args.prompts_file is not None:
        path = args.prompts_file
        if not path.is_file():
            raise ConfigError(f"Prompts file {path} does not exist or is not a regular file.",
                              hint="Pass a text or JSONL file with --prompts-file.")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"Prompts file {path} cannot be read: {exc.strerror or exc}.") \
                from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"Prompts file {path} is not UTF-8 (byte {exc.start}).",
                              hint="Save the file as UTF-8.") from exc
        is_jsonl = path.suffix.lower() == ".jsonl"
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            if is_jsonl:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{lineno}: not valid JSON ({exc.msg}).") from exc
                if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
                    raise ConfigError(f"{path}:{lineno}: expected an object with a 'prompt' string.")
                prompts.append(obj["prompt"])
            else:
                prompts.append(line)
    if not prompts:
        raise ConfigError("No prompts given.", hint="Use --prompt TEXT or --prompts-file FILE.")
    return prompts


def run(args: argparse.Namespace) -> int:
    from selfguide import backends
    from selfguide.runs.events import Progress, delta_progress

    if not 1 <= args.n <= 64:
        raise ConfigError(f"Invalid value for 'n': {args.n} (must be in 1..64).")
    if args.batch_size is not None and not 1 <= args.batch_size <= 1024:
        raise ConfigError(f"Invalid value for 'batch_size': {args.batch_size} (must be in "
                          "1..1024).")
    prompts = read_prompts(args)
    model_cfg = from_dict(ModelConfig, overrides_from_args(args, ModelConfig))
    if args.no_chat:
        model_cfg = replace(model_cfg, chat=False)
    sampling = from_dict(SamplingConfig, overrides_from_args(args, SamplingConfig))
    gen = backends.get_generator(model_cfg.backend, config=model_cfg,
                                 batch_size=args.batch_size)
    err = None if args.quiet else sys.stderr
    if err is not None and gen.info is not None:
        print(f"model: {gen.info.summary()}", file=err)
    if err is not None and args.verbose and hasattr(gen, "detected"):
        for label, text in gen.detected(model_cfg.chat).items():
            print(f"  {label}: {text}", file=err)
        for est in _memory(model_cfg):
            print(f"  memory: {est.summary()}", file=err)
    bar = Progress("generate", len(prompts), unit="prompts", stream=err)
    outs = gen.generate(prompts, sampling, n=args.n, chat=model_cfg.chat,
                        progress=delta_progress(bar))
    bar.close()
    for i, (prompt, comps) in enumerate(zip(prompts, outs)):
        if args.json:
            print(json.dumps({"prompt": prompt, "completions": comps}, ensure_ascii=False))
            continue
        if len(prompts) > 1:
            print(f"=== prompt {i + 1}: {prompt}")
        for j, c in enumerate(comps, start=1):
            print(f"[{j}] {c}" if len(comps) > 1 else c)
    return 0


def _memory(model_cfg: ModelConfig) -> list:
    """The load's memory estimate (what the model needs at its precision, what is free),
    for ``--verbose``; nothing when it cannot be estimated (a hub id, unreadable headers)."""
    from selfguide.errors import SelfGuideError
    from selfguide.models import loading

    try:
        return loading.memory_estimate(model_cfg)
    except (SelfGuideError, OSError, ValueError):
        return []
