"""Finetuning on the synthetic dataset: QLoRA (the default; LoRA on an fp32 base on a CPU
without native bf16), LoRA or full, via ``transformers.Trainer``.

What it does: checks the dataset is usable (not empty, not one label, not one repeated
completion), holds back synthetic rows to validate each epoch and keep the best one,
tokenizes the rows (:mod:`selfguide.training.data`: loss on the completion tokens only, long
rows reported), runs the trainer (:mod:`selfguide.training.loop`: progress to
``events.jsonl``), checkpoints per epoch (or N steps) and, on a rerun, resumes from the last
*complete* checkpoint (transformers would pick a torn one and crash). The adapter is saved
by :func:`selfguide.models.adapters.save_adapter` (safetensors + ``selfguide_adapter.json``).

What it does not do: build the dataset (``selfguide.runs.dataset``), load models
(``selfguide.models.loading``), save/load/merge adapters (``selfguide.models.adapters``) or evaluate
(``selfguide.evaluation.predict``). Heavy libraries are imported inside functions.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfguide.errors import DatasetError
from selfguide.runs import store
from selfguide.runs.events import EventLog
from selfguide.runs.rundir import RunDir
from selfguide.settings.fields import ModelConfig, to_dict
from selfguide.settings.training import TrainConfig
from selfguide.training import dist as train_dist
from selfguide.training.data import Features, build_features, completion_prefix, encode_record

# --------------------------------------------------------------------------- dataset checks

def check_dataset(records: Sequence[dict], *, task_type: str = "generation",
                  force: bool = False, own_labels: bool = False,
                  demo_labels: Sequence[str] = (), max_label_share: float = 1.0) -> dict:
    """Raise ``DatasetError`` for an empty or degenerate dataset; return simple stats.

    Degenerate (refused unless ``force``): all completions identical; a classification set
    whose rows all carry one label (the model would learn a constant) -- unless
    ``own_labels`` and the demos do not spread over labels (the labels are the model's own
    answers, SELF-GUIDE label strategy ``own``); or one label with ``max_label_share`` of
    the rows or more while the demos' labels spread (issue 39: 48 A / 12 B taught a
    3-label task to answer A to every held-out row).
    """
    if not records:
        raise DatasetError("The training set has 0 rows.",
                           hint="Synthesize more examples or loosen the filters, then rerun "
                                "'selfguide filter'.")
    for i, r in enumerate(records):
        if not isinstance(r.get("prompt"), str) or not isinstance(r.get("completion"), str):
            raise DatasetError(f"Training row {i + 1} (id {r.get('id')!r}) lacks a string "
                               "'prompt' or 'completion'.")
    completions = {r["completion"].strip() for r in records}
    counts = Counter(str(r["label"]) for r in records if r.get("label") not in (None, ""))
    stats = {"rows": len(records), "distinct_completions": len(completions),
             "labels": sorted(counts), "label_counts": dict(counts)}
    if force:
        return stats
    spread = len(set(demo_labels)) >= 2
    if own_labels and task_type == "classification" and len(counts) == 1 and not spread:
        stats["own_single_label"] = True
        return stats
    if len(records) > 1 and len(completions) == 1:
        raise DatasetError(f"All {len(records)} training completions are identical "
                           f"({next(iter(completions))[:60]!r}); the model would learn a "
                           "constant.", hint="Synthesize more diverse examples, or pass "
                                             "--force to train anyway.")
    if task_type == "classification" and len(records) > 1 and len(counts) == 1:
        raise DatasetError(f"Every training row has the label {next(iter(counts))!r}.",
                           hint="Balance the labels (see the SELF-GUIDE label settings) or "
                                "pass --force to train anyway.")
    if task_type == "classification" and spread and len(records) > 1:
        _check_label_skew(counts, demo_labels, max_label_share)
    return stats


def _check_label_skew(counts: Counter, demo_labels: Sequence[str], limit: float) -> None:
    """Refuse a dataset whose top label has ``limit`` of the rows or more when the demos'
    top label has less: what the model would learn is that label, not the task."""
    label, n = counts.most_common(1)[0]
    share = n / sum(counts.values())
    demo_share = Counter(demo_labels).most_common(1)[0][1] / len(demo_labels)
    if limit >= 1.0 or share < limit or share <= demo_share:
        return
    other = ", ".join(f"{k} {v}" for k, v in counts.most_common()[1:]) or "no other label"
    raise DatasetError(
        f"{n} of the {sum(counts.values())} training rows ({share:.0%}) have the label "
        f"{label!r} ({other}), while the demos spread over "
        f"{len(set(demo_labels))} labels ({demo_share:.0%} at most): the tuned model would "
        "learn to answer it to everything (a collapse), not the task.",
        hint="Check the labels on the Filter page (or 'selfguide filter'), synthesize more "
             "inputs of the other labels, or pass --force to train anyway.",
        ui_hint="Check the labels on the Filter page or synthesize more inputs of the other "
                "labels; tick *force* in the training settings to train anyway.")


def validation_split(records: Sequence[dict], val_records: Sequence[dict],
                     cfg: TrainConfig) -> tuple[list[dict], list[dict], str]:
    """THE validation split of a run, decided here only (training, the Finetune page, the
    Filter page and the cards all show this): (train rows, validation rows, where the
    validation rows come from, in words).

    The dataset's own ``val.jsonl`` when the filters wrote one, else ``val_fraction`` of the
    rows held back by training (seeded), else none."""
    if val_records:
        return list(records), list(val_records), "the dataset's validation file"
    train, val = split_validation(records, cfg, seed=cfg.seed)
    if val:
        return train, val, f"{cfg.val_fraction:.0%} of the rows held back by training (seeded)"
    why = ("validation is off (validation fraction 0)" if cfg.val_fraction <= 0 else
           f"fewer than {cfg.min_val_rows} rows could be held back")
    return train, val, why


def split_validation(records: Sequence[dict], cfg: TrainConfig, *,
                     seed: int) -> tuple[list[dict], list[dict]]:
    """Hold back ``val_fraction`` of the rows (seeded) for per-epoch validation."""
    rows = list(records)
    n_val = round(len(rows) * cfg.val_fraction)
    if cfg.val_fraction <= 0 or n_val < cfg.min_val_rows or len(rows) - n_val < 1:
        return rows, []
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    val_idx = set(idx[:n_val])
    return ([r for i, r in enumerate(rows) if i not in val_idx],
            [r for i, r in enumerate(rows) if i in val_idx])

# --------------------------------------------------------------------------- checkpoints

def _checkpoint_step(p: Path) -> int | None:
    try:
        return int(p.name.split("-", 1)[1]) if p.name.startswith("checkpoint-") else None
    except ValueError:
        return None


def is_complete_checkpoint(path: str | Path, *, world_size: int = 1) -> bool:
    """True if ``path`` holds a loadable trainer state and loadable safetensors weights
    (and, written by ``world_size`` > 1 processes, every rank's RNG state).

    Trainer writes weights, optimizer, scheduler, RNG state and finally
    ``trainer_state.json``; a kill before the end leaves a torn directory. Under several
    processes rank 0 writes the state while the others write their own
    ``rng_state_N.pth``, with no wait between.
    """
    path = Path(path)
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    weights = sorted(path.glob("*.safetensors"))
    if not weights or not (path / "optimizer.pt").is_file():
        return False
    if world_size > 1 and not all((path / f"rng_state_{i}.pth").is_file()
                                  for i in range(world_size)):
        return False
    from safetensors import safe_open

    for w in weights:
        try:
            with safe_open(str(w), framework="pt") as fh:
                for k in fh.keys():  # noqa: SIM118 - safe_open is not iterable
                    fh.get_tensor(k)
        except Exception:  # noqa: BLE001 - any decode failure means torn
            return False
    return True


def dataset_fingerprint(run_dir: Path) -> str:
    """Hash of the run's ``dataset/train.jsonl`` and ``val.jsonl`` bytes (missing = empty)."""
    return RunDir(run_dir).dataset_fingerprint()


def last_complete_checkpoint(directory: str | Path, *, world_size: int = 1) -> Path | None:
    """The highest-numbered complete ``checkpoint-N`` in ``directory`` (numeric order)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    cands = [(s, p) for p in directory.iterdir()
             if p.is_dir() and (s := _checkpoint_step(p)) is not None]
    for _, p in sorted(cands, reverse=True):
        if is_complete_checkpoint(p, world_size=world_size):
            return p
    return None

# --------------------------------------------------------------------------- training

@dataclass
class TrainResult:
    adapter_dir: Path
    metrics: dict


def load_train_records(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """``dataset/train.jsonl`` and (optional) ``dataset/val.jsonl`` of a run."""
    run = RunDir(run_dir)
    train_file = run.records_file("train")
    if not train_file.is_file():
        raise DatasetError(f"No training set at {train_file}.",
                           hint="Run 'selfguide synthesize' and 'selfguide filter' first.")
    return run.read_records("train"), run.read_records("val")


def preflight(run_dir: str | Path, cfg: TrainConfig, *, model_cfg: ModelConfig | None = None
              ) -> Any:
    """Everything ``train`` can refuse before loading a model: a missing, empty or degenerate
    dataset, a bad model reference or weights, and a configuration whose estimated peak
    memory (at its ``max_length``, or the shortest row for auto) exceeds what is available.
    Returns the model's :class:`~selfguide.training.fit.ModelDims` (None for a hub id)."""
    from selfguide.models import convert as model_convert
    from selfguide.models import loading as models
    from selfguide.models import ref as model_ref
    from selfguide.training import fit as trainfit
    run_dir = Path(run_dir)
    model_cfg = model_cfg or RunDir(run_dir).model_config()
    records, _ = load_train_records(run_dir)
    check_run_dataset(run_dir, records, force=cfg.force, max_label_share=cfg.max_label_share)
    device = models.pick_device(model_cfg.device)
    train_dist.check_supported(cfg.resolve(device), device)
    train_dist.bind_device(device)  # the memory check below asks this rank's GPU
    src = model_ref.resolve_model(model_cfg.model, trust_remote_code=model_cfg.trust_remote_code)
    path = model_convert.checkpoint_dir(src)
    if path is None:
        return None
    dims = trainfit.model_dims(path)
    cfg = trainfit.resolve_method(cfg, dims, device, cfg.max_length or 16)
    train_dist.check_supported(cfg, device)  # auto may have become qlora
    trainfit.check_memory(dims, cfg, cfg.max_length or 16, device=device)
    return dims


def check_run_dataset(run_dir: Path, records: Sequence[dict], *, force: bool = False,
                      max_label_share: float = 1.0) -> dict:
    """:func:`check_dataset` for a run's training rows (its task type, and whether its
    labels are the model's own answers, from ``dataset/report.json``)."""
    run = RunDir(run_dir)
    report = run.read_report() or {}
    task = run.read_task_dict() or {}  # as saved: a run may hold a partial task
    demos = task.get("demos") or task.get("examples") or []
    demo_labels = [str(d.get("output", "")).strip() for d in demos if isinstance(d, dict)]
    return check_dataset(records, task_type=run_task_type(run_dir), force=force,
                         own_labels=report.get("label_strategy") == "own",
                         demo_labels=demo_labels, max_label_share=max_label_share)


def run_task_type(run_dir: Path) -> str:
    task = RunDir(run_dir).read_task()
    return task.task_type if task else "generation"


@dataclass
class _Prepared:
    """What :func:`train` has once the model is loaded and the rows are tokenized."""

    lm: Any
    chat: bool
    device: str
    cfg: TrainConfig
    feats: Features
    vfeats: Features
    max_length: int
    prefix: str = ""  # written before each completion (train_data.completion_prefix)


def train(run_dir: str | Path, cfg: TrainConfig, *, model_cfg: ModelConfig | None = None,
          events: EventLog | None = None, stream: Any = None) -> TrainResult:
    """Finetune the run's model on ``dataset/train.jsonl``; write ``train/adapter``.

    Under a multi-process launch (:mod:`selfguide.training.dist`) every rank calls this; only
    rank 0 writes events and run files, and all return the same metrics.
    """
    from selfguide.models import adapters
    from selfguide.training.loop import build_trainer, warm_up

    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    main = train_dist.is_main()
    events = (events or EventLog(None)) if main else EventLog(None)
    model_cfg = model_cfg or run.model_config()
    dims = preflight(run_dir, cfg, model_cfg=model_cfg)
    records, val_records = load_train_records(run_dir)
    stats = check_run_dataset(run_dir, records, force=cfg.force,
                              max_label_share=cfg.max_label_share)
    if stats.get("own_single_label"):
        events.emit("warning", message=f"Every training row has the label "
                                       f"{stats['labels'][0]!r}: the model's own answer to "
                                       f"every input. The tuned model will answer it too.")
    records, val_records, _ = validation_split(records, val_records, cfg)
    p = _load_and_tokenize(cfg, model_cfg, dims, records, val_records, events)
    trainer = build_trainer(p.lm.model, p.lm.tokenizer, p.cfg, p.feats, p.vfeats,
                            run.checkpoints_dir, device=p.device, events=events, stream=stream,
                            tensorboard_dir=run.tensorboard_dir)
    resume = _resume_point(run, p.cfg, model_cfg, events, prefix=p.prefix)
    t0 = time.monotonic()
    if train_dist.world_size() == 1:  # one-off costs of a first pass, kept off the ETA clock
        events.emit("log", message=f"warm-up pass in {warm_up(trainer):.1f}s")
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    wall = time.monotonic() - t0

    model, state_dict = train_dist.final_weights(trainer)  # FSDP: every rank gathers
    metrics = _train_metrics(trainer, result, p, stats, wall, resume)
    if main:
        manifest = {"base_fingerprint": p.lm.info.fingerprint, "model": model_cfg.model,
                    "chat": p.chat, "method": p.cfg.method, "train_config": to_dict(p.cfg),
                    "created": time.time()}
        adapters.save_adapter(model, p.lm.tokenizer, run.adapter_dir, manifest,
                              full=p.cfg.method == "full", state_dict=state_dict)
        run.write_train_metrics(metrics)
        events.emit("train_end", **{k: v for k, v in metrics.items() if k != "eval_losses"})
    train_dist.barrier()  # every rank returns once the adapter is on disk
    return TrainResult(adapter_dir=run.adapter_dir, metrics=metrics)


def _load_and_tokenize(cfg: TrainConfig, model_cfg: ModelConfig, dims: Any,
                       records: list[dict], val_records: list[dict],
                       events: EventLog) -> _Prepared:
    """Load the model for training and tokenize the rows at the chosen ``max_length``."""
    from selfguide.models import loading as models
    from selfguide.settings.fields import replace
    from selfguide.training import fit as trainfit

    t_load = time.monotonic()
    device = models.pick_device(model_cfg.device)
    plain = cfg.resolve(device)
    cfg = trainfit.resolve_method(cfg, dims, device, cfg.max_length or 16)
    if cfg.method != plain.method:  # auto: LoRA's dense base would not fit
        events.emit("log", message="method auto: a 4-bit base (QLoRA), because LoRA on a "
                                   f"{plain.precision} base would not fit in the memory "
                                   "available")
    lm = models.load_model(replace(model_cfg, precision=cfg.model_precision, device=device))
    tok = lm.tokenizer
    chat = bool(model_cfg.chat and getattr(lm.info, "has_chat_template", False))
    events.emit("log", message=f"loaded {model_cfg.model} ({cfg.model_precision}) in "
                                f"{time.monotonic() - t_load:.1f}s")
    max_length = cfg.max_length
    prefix = completion_prefix(tok, records)
    if dims is not None:
        longest = max(sum(map(len, encode_record(tok, r, chat=chat, prefix=prefix)))
                      for r in [*records, *val_records])
        max_length, why = trainfit.pick_max_length(dims, cfg, longest, device=device)
        trainfit.check_memory(dims, cfg, max_length, device=device)
        if longest > trainfit.LONG_ROW_TOKENS:
            events.emit("warning", message=f"rows are long: up to {longest} tokens; "
                                           f"max_length={max_length} ({why})")
    elif not max_length:
        max_length = 2048
    feats = build_features(tok, records, chat=chat, max_length=max_length,
                           long_rows=cfg.long_rows, prefix=prefix)
    vfeats = build_features(tok, val_records, chat=chat, max_length=max_length, prefix=prefix,
                            long_rows="drop" if cfg.long_rows == "error" else cfg.long_rows)
    if feats.long_rows:
        events.emit("warning", message=f"{len(feats.long_rows)} rows longer than max_length="
                                       f"{max_length} were {cfg.long_rows}ped",
                    long_rows=feats.long_rows[:50])
    if not feats.rows:
        raise DatasetError(f"No training row fits max_length={max_length} tokens.",
                           hint="Raise --max-length (or use 0 = auto).")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return _Prepared(lm, chat, device, cfg, feats, vfeats, max_length, prefix)


def _resume_point(run: RunDir, cfg: TrainConfig, model_cfg: ModelConfig,
                  events: EventLog, *, prefix: str = "") -> Path | None:
    """The checkpoint to resume from (None: from scratch); records the settings.

    The data is part of what a checkpoint was trained on: after a re-filter or a new
    synthesis, resuming the old checkpoints would silently return the old model. So is the
    number of processes (the global batch), and the completion prefix (checkpoints of
    bare labels are not resumed with spaced ones). Under several processes rank 0 decides (and
    writes) and tells the others.
    """
    if not train_dist.is_main():
        found = train_dist.broadcast(None)
        return Path(found) if found else None
    ckpt_dir = run.checkpoints_dir
    settings = {"train": to_dict(cfg), "model": to_dict(model_cfg),
                "data": dataset_fingerprint(run.path)}
    world = train_dist.world_size()
    if world > 1:  # absent for one process: its earlier checkpoints stay resumable
        settings["world_size"] = world
    if prefix:  # absent when bare: checkpoints written before the prefix stay resumable
        settings["completion_prefix"] = prefix
    settings_hash = store.config_hash(settings)
    prev = run.read_train_config() or {}
    if ckpt_dir.exists() and prev.get("hash") != settings_hash:
        # Checkpoints of other settings (or of unknown provenance) must not be resumed. The
        # trainer may already have made the empty folder: a first training says nothing.
        if any(ckpt_dir.glob("checkpoint-*")):
            events.emit("log", message="training settings changed: starting from scratch"
                        if prev.get("hash") else "checkpoints of unknown settings: starting "
                                                 "from scratch")
        shutil.rmtree(ckpt_dir)
    resume = last_complete_checkpoint(ckpt_dir, world_size=world)
    if resume is not None:
        events.emit("log", message=f"resuming from {resume.name}")
    run.write_train_config({**settings, "hash": settings_hash})
    train_dist.broadcast(str(resume) if resume else None)
    return resume


def _train_metrics(trainer: Any, result: Any, p: _Prepared, stats: dict, wall: float,
                   resume: Path | None) -> dict:
    hist = trainer.state.log_history
    seen = int(trainer.state.num_input_tokens_seen or 0)
    return {
        "rows": len(p.feats.rows), "val_rows": len(p.vfeats.rows),
        "long_rows": len(p.feats.long_rows), "max_length": p.max_length,
        "completion_prefix": p.prefix,
        "dataset": stats, "steps": trainer.state.global_step,
        "train_loss": result.training_loss, "wall_s": round(wall, 2),
        "train_tokens": p.feats.prompt_tokens + p.feats.completion_tokens,
        "tokens_per_s": round(seen / wall, 1) if wall > 0 else None,
        "rows_per_forward": trainer.args.per_device_train_batch_size,
        "forwards_per_step": trainer.args.gradient_accumulation_steps,
        "eval_losses": [{"epoch": h.get("epoch"), "eval_loss": h["eval_loss"]}
                        for h in hist if "eval_loss" in h],
        "best_checkpoint": Path(trainer.state.best_model_checkpoint).name
        if trainer.state.best_model_checkpoint else None,
        "resumed_from": resume.name if resume else None,
        # forwards that ran the rows' shared prompt prefix once, and the tokens that saved
        "prefix_shared": dict(shared) if (shared := getattr(trainer, "prefix_stats", None))
        and shared.get("shared") else None,
    }
