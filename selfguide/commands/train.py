"""``selfguide train --run NAME``: finetune the run's model on its synthetic dataset.

Parses options into a ``TrainConfig`` and calls :func:`selfguide.training.trainer.train` inside a
``jobs.worker`` (status, heartbeat, events, cancel). Under ``accelerate launch`` /
``torchrun`` with several processes only rank 0 is the job's worker; the other ranks train
alongside it and write nothing (:mod:`selfguide.training.dist`). Nothing heavy is imported at
load time.
"""

from __future__ import annotations

import argparse

NAME = "train"
HELP = ("Finetune (QLoRA by default; LoRA on a CPU without bf16) on the run's synthetic "
        "dataset; resumable.")
ORDER = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selfguide.settings.fields import add_dataclass_args
    from selfguide.settings.training import PRESETS, TrainConfig

    parser.add_argument("--run", required=True, help="Run name (in the workspace).")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="Start from named settings; explicit options override them.")
    add_dataclass_args(parser, TrainConfig)


def config_from_args(args: argparse.Namespace):
    from selfguide.settings.fields import from_dict, overrides_from_args
    from selfguide.settings.training import PRESETS, TrainConfig

    base = dict(PRESETS.get(getattr(args, "preset", None) or "", {}))
    base.update(overrides_from_args(args, TrainConfig))
    return from_dict(TrainConfig, base)


def run(args: argparse.Namespace) -> int:
    from selfguide import jobs
    from selfguide.runs import store
    from selfguide.runs.rundir import RunDir
    from selfguide.training import dist as train_dist
    from selfguide.training import trainer as training
    cfg = config_from_args(args)
    run_dir = store.resolve_run_dir(args.run, must_exist=True)
    from selfguide.settings.fields import to_dict

    jobs.check_inputs_idle(run_dir, "train")
    RunDir(run_dir).check_inputs("train")
    training.preflight(run_dir, cfg)  # dataset, model, memory: refuse before "running"
    if not train_dist.is_main():  # another rank of a multi-process launch: no job, no files
        training.train(run_dir, cfg)
        train_dist.finish()
        return 0

    # The worker writes the manifest's train stage (running, then done/failed) with the job.
    with jobs.worker(run_dir, "train", manifest=True,
                     config_hash=store.config_hash(to_dict(cfg))) as events:
        res = training.train(run_dir, cfg, events=events)
        m = res.metrics
        events.record(rows=m["rows"], steps=m["steps"], train_loss=m["train_loss"])
    train_dist.finish()  # after the job's final status: the other ranks wait for it
    print(f"trained {m['steps']} steps on {m['rows']} rows ({m['long_rows']} too long, "
          f"{m['val_rows']} held back) - loss {m['train_loss']:.4f}, "
          f"{m['tokens_per_s']} tok/s, best {m['best_checkpoint'] or 'last'}; "
          f"adapter: {res.adapter_dir}")
    return 0
