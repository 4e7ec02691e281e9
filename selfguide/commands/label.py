"""``selfguide label TASK --inputs FILE``: label given inputs exactly as stage 2 would.

A way to measure self-label quality on real rows from outside; the work is
``selfguide.methods.selfguide.label_inputs`` (the labelling choice of a SELF-GUIDE run of
the task, ``--run NAME`` or one synthesized first and kept in ``<workspace>/labels/``).
When the file has references (``output``), every protocol and strategy is labelled too
and a table of accuracies is printed, with the majority-class share as reference, ending
with the line ``accuracy: 0.87`` for the default choice (generation tasks:
``rouge_l: 0.41``).

FILE: JSONL or CSV with an ``input`` column and an optional ``output`` (or ``outputs``),
or a task file whose ``test`` / NIv2 ``Instances`` rows are used. Labels are written as
JSONL to ``--out`` (default ``<workspace>/labels/<task>.jsonl``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "label"
HELP = "Label inputs as SELF-GUIDE stage 2 would; with references, print label accuracy."
ORDER = 25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selfguide.methods.selfguide.config import LABEL_PROTOCOLS
    from selfguide.methods.selfguide.strategies import LABEL_COMMAND_NAMES
    from selfguide.settings.fields import ModelConfig, add_dataclass_args

    parser.add_argument("task", help="Task file (JSON/YAML, NIv2 JSON, CSV or JSONL).")
    parser.add_argument("--inputs", required=True, type=Path,
                        help="JSONL/CSV with 'input' (and optional 'output'), or a task file "
                             "whose test rows are used.")
    parser.add_argument("--preset", default="quick", help="Synthesis preset (quick or paper).")
    parser.add_argument("--label-protocol", default=None, choices=LABEL_PROTOCOLS,
                        help="Override the preset's labelling protocol.")
    parser.add_argument("--label-strategy", default=None,
                        choices=LABEL_COMMAND_NAMES,
                        help="Override the preset's label strategy.")
    parser.add_argument("--run", default=None,
                        help="Classification: take the labelling choice from this SELF-GUIDE "
                             "run of the task (default: synthesize one with the preset, kept "
                             "in <workspace>/labels/ and reused).")
    parser.add_argument("--n-samples", type=int, default=None, help="Samples per input.")
    parser.add_argument("--output-temperature", type=float, default=None,
                        help="Sampling temperature of the answers.")
    parser.add_argument("--limit", type=int, default=0,
                        help="Label a seeded sample of this many rows (0 = all).")
    parser.add_argument("--out", type=Path, default=None,
                        help="Where to write the labels (JSONL; default "
                             "<workspace>/labels/<task>.jsonl).")
    add_dataclass_args(parser, ModelConfig)


def run(args: argparse.Namespace) -> int:
    from selfguide.methods.selfguide import label_inputs as L
    from selfguide.runs import store
    from selfguide.settings.fields import ModelConfig, overrides_from_args, replace
    from selfguide.task.formats import load_task

    task = load_task(args.task)
    rows = L.read_inputs(args.inputs)
    model = replace(ModelConfig(), **overrides_from_args(args, ModelConfig))
    out = args.out or L.default_out(task)
    result = L.label_file(
        task, rows, model, preset_name=args.preset, out=out, limit=args.limit,
        run_name=args.run, note=lambda m: print(m, flush=True),
        overrides={k: getattr(args, k) for k in ("label_protocol", "label_strategy",
                                                 "n_samples", "output_temperature")})
    store.atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                         for r in result["rows"]))
    if result["choice"].run:
        print(f"Labelling choice of the run {result['choice'].run}:")
    print(result["choice"].reason)
    print(f"labels: {out}")
    if result["table"]:
        print(L.format_table(result))
    return 0
