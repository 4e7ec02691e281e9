"""``selfguide self-instruct --run NAME``: the Self-Instruct bootstrap loop (Wang et al. 2022).

Parses the seed pool and the options into ``SelfInstructConfig`` /
``SelfInstructFilterConfig`` / ``ModelConfig``, loads the model, and runs
:func:`selfguide.selfinstruct_pipeline.run_self_instruct` inside a ``jobs.worker``
(status, heartbeat, progress events, cancel). Rerunning the same command continues after the
last committed round. Prints a progress bar and the funnel. Nothing heavy is imported at
module load.
"""

from __future__ import annotations

import argparse
import sys

NAME = "self-instruct"
HELP = "Generate new instructions and instances from a seed task pool with Self-Instruct."
ORDER = 25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selfguide.config import ModelConfig, add_dataclass_args
    from selfguide.configs.selfinstruct import SelfInstructConfig, SelfInstructFilterConfig

    parser.add_argument("--run", required=True, help="Run name (in the workspace).")
    parser.add_argument("--seed-tasks", default=None,
                        help="Seed pool in the paper's seed_tasks.jsonl schema (default: the "
                             "shipped pool; a rerun reuses the run's copy).")
    parser.add_argument("--task", default=None,
                        help="Optional target task file (own JSON/YAML, NIv2 JSON, CSV/JSONL): "
                             "saved as the run's task.json so 'selfguide eval' can measure the "
                             "tuned model on its held-out examples.")
    add_dataclass_args(parser, ModelConfig)
    add_dataclass_args(parser, SelfInstructConfig)
    add_dataclass_args(parser, SelfInstructFilterConfig)


def format_report(report: dict) -> str:
    """The funnel as a small text table."""
    ins, inst = report["instructions"], report["instances"]
    lines = [f"rounds: {report['rounds']} ({report['prompts']} prompts)",
             f"instructions generated: {ins['generated']}"]
    left = ins["generated"]
    for name, n in ins["rejected"].items():
        left -= n
        lines.append(f"  - {name:<16} -{n:<6} {left}")
    lines.append(f"instructions accepted: {ins['accepted']} "
                 f"({ins['classification']} classification)")
    lines.append(f"instances generated: {inst['generated']}")
    left = inst["generated"]
    for name, n in sorted(inst["dropped"].items(), key=lambda kv: -kv[1]):
        left -= n
        lines.append(f"  - {name:<16} -{n:<6} {left}")
    lines.append(f"training examples: {report['train']}")
    if report.get("warning"):
        lines.append(f"warning: {report['warning']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from selfguide import jobs, selfinstruct_pipeline, store
    from selfguide.config import ModelConfig, from_dict, overrides_from_args
    from selfguide.configs.selfinstruct import SelfInstructConfig, SelfInstructFilterConfig
    from selfguide.selfinstruct_prompts import load_seed_tasks

    cfg = from_dict(SelfInstructConfig, overrides_from_args(args, SelfInstructConfig))
    fcfg = from_dict(SelfInstructFilterConfig,
                     overrides_from_args(args, SelfInstructFilterConfig))
    model = from_dict(ModelConfig, overrides_from_args(args, ModelConfig))
    target = None
    if args.task:  # validate before anything is written
        from selfguide.task import load_task

        target = load_task(args.task)
    run_dir = store.resolve_run_dir(args.run)
    run_copy = run_dir / selfinstruct_pipeline.SEEDS_FILE
    seed_path = args.seed_tasks or (run_copy if run_copy.is_file() else None)
    seeds = load_seed_tasks(seed_path)
    from selfguide.models import resolve_model

    resolve_model(model.model, trust_remote_code=model.trust_remote_code)  # before any write
    existed = run_dir.exists()
    run_dir = store.resolve_run_dir(args.run, create=True)
    if target is not None:
        store.atomic_write_json(run_dir / "task.json", target.to_dict())
    print(f"run {args.run}: Self-Instruct, {len(seeds)} seed tasks, target "
          f"{cfg.num_instructions} instructions, model {model.model}",
          file=sys.stderr, flush=True)
    try:
        with jobs.worker(run_dir, selfinstruct_pipeline.STAGE) as events:
            from selfguide.models import load_generator

            gen = load_generator(model)
            report = selfinstruct_pipeline.run_self_instruct(
                run_dir, gen, seeds, cfg, fcfg, model=model, events=events)
            from selfguide.backends.openai_client import record_server

            record_server(run_dir, gen)  # backend=openai: the server and its model name
            if not report.get("train"):
                from selfguide.errors import DatasetError

                raise DatasetError("Self-Instruct produced no training example.",
                                   hint="Generate more instructions (--num-instructions) or "
                                        "loosen the filters.")
    except BaseException:
        store.set_stage(run_dir, selfinstruct_pipeline.STAGE, "failed")
        if not existed:
            store.discard_new_run(run_dir, (selfinstruct_pipeline.ROUNDS_FILE,
                                            "candidates.parquet"))
        raise
    print(format_report(report))
    print(f"candidates: {run_dir / 'candidates.parquet'}")
    print(f"dataset: {run_dir / 'dataset' / 'train.jsonl'}")
    return 0
