"""``selfguide self-instruct --run NAME``: the Self-Instruct bootstrap loop (Wang et al. 2022).

Parses the seed pool and the options into ``SelfInstructConfig`` /
``SelfInstructFilterConfig`` / ``ModelConfig``, loads the model, and runs
:func:`selfguide.methods.selfinstruct.pipeline.run_self_instruct` inside a ``jobs.worker``
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
    from selfguide.methods.selfinstruct.config import SelfInstructConfig, SelfInstructFilterConfig
    from selfguide.settings.fields import ModelConfig, add_dataclass_args

    parser.add_argument("--run", required=True, help="Run name (in the workspace).")
    parser.add_argument("--seed-tasks", default=None,
                        help="Seed pool in the paper's seed_tasks.jsonl schema (default: the "
                             "shipped pool; a rerun reuses the run's copy).")
    parser.add_argument("--task", default=None,
                        help="Optional target task file (own JSON/YAML, NIv2 JSON, CSV/JSONL): "
                             "saved as the run's task.json so 'selfguide eval' can measure the "
                             "tuned model on its held-out examples.")
    from selfguide.methods.selfinstruct.config import PRESETS

    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="Start from named settings: quick (a first run on a CPU) or "
                             "paper (Wang et al. 2022, the defaults); options given win.")
    add_dataclass_args(parser, ModelConfig)
    add_dataclass_args(parser, SelfInstructConfig)
    add_dataclass_args(parser, SelfInstructFilterConfig)


def _configs(args: argparse.Namespace):
    """(SelfInstructConfig, SelfInstructFilterConfig, ModelConfig) from preset + options."""
    from selfguide.methods.selfinstruct.config import (
        SelfInstructConfig,
        SelfInstructFilterConfig,
        preset,
    )
    from selfguide.settings.fields import ModelConfig, from_dict, overrides_from_args

    cfg = preset(getattr(args, "preset", None), **overrides_from_args(args, SelfInstructConfig))
    fcfg = from_dict(SelfInstructFilterConfig,
                     overrides_from_args(args, SelfInstructFilterConfig))
    return cfg, fcfg, from_dict(ModelConfig, overrides_from_args(args, ModelConfig))


def run(args: argparse.Namespace) -> int:
    from selfguide import jobs
    from selfguide.methods.selfinstruct import pipeline as selfinstruct_pipeline
    from selfguide.methods.selfinstruct.prompts import load_seed_tasks
    from selfguide.methods.selfinstruct.table import format_report
    from selfguide.runs import store
    from selfguide.runs.rundir import RunDir

    cfg, fcfg, model = _configs(args)
    target = None
    if args.task:  # validate before anything is written
        from selfguide.task.formats import load_task

        target = load_task(args.task)
    run_dir = store.resolve_run_dir(args.run)
    run_copy = RunDir(run_dir).seed_tasks_file
    seed_path = args.seed_tasks or (run_copy if run_copy.is_file() else None)
    seeds = load_seed_tasks(seed_path)
    from selfguide.models.ref import resolve_model

    resolve_model(model.model, trust_remote_code=model.trust_remote_code)  # before any write
    existed = run_dir.exists()
    run = RunDir.named(args.run, create=True)
    run_dir = run.path
    if target is not None:
        run.write_task(target)
    print(f"run {args.run}: Self-Instruct, {len(seeds)} seed tasks, target "
          f"{cfg.num_instructions} instructions, model {model.model}",
          file=sys.stderr, flush=True)
    try:
        # The worker writes the manifest's stage state (running, then done/failed) with the job.
        with jobs.worker(run_dir, selfinstruct_pipeline.STAGE, manifest=True) as events:
            from selfguide import backends

            gen = backends.get_generator(model.backend, config=model)
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
        if not existed:
            store.discard_new_run(run_dir, (run.rounds_file.name, run.candidates_file.name))
        raise
    print(format_report(report))
    print(f"candidates: {run.candidates_file}")
    print(f"dataset: {run.records_file('train')}")
    return 0
