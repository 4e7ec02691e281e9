"""Finetuning on the synthetic dataset: QLoRA (default), LoRA or full, via ``transformers.Trainer``.

What it does: checks the dataset is usable (not empty, not one label, not one repeated
completion), tokenizes each record as ``render_prompt(prompt) + completion + eos`` with the
loss on the completion tokens only (prompt tokens get label -100, so training sees exactly
the prompt evaluation uses), reports rows longer than ``max_length`` instead of cutting them
silently, holds back synthetic rows to validate each epoch and keep the best one, streams
progress to ``events.jsonl`` through a ``TrainerCallback``, checkpoints per epoch (or N steps)
and, on a rerun, resumes from the last *complete* checkpoint (transformers would pick a torn
one and crash). The adapter is saved as safetensors with ``selfguide_adapter.json`` (base
fingerprint, model reference, chat flag). ``merge`` writes a merged bf16 model.

What it does not do: build the dataset (``selfguide.dataset``), load models
(``selfguide.models``) or evaluate (``selfguide.evaluation``). Heavy libraries are imported
inside functions.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfguide import store
from selfguide.config import ModelConfig, to_dict
from selfguide.configs.training import TrainConfig
from selfguide.errors import ConfigError, DatasetError, ModelError, SelfGuideError
from selfguide.events import EventLog, Progress

log = logging.getLogger(__name__)

ADAPTER_MANIFEST = "selfguide_adapter.json"
IGNORE_INDEX = -100


# --------------------------------------------------------------------------- dataset checks

def check_dataset(records: Sequence[dict], *, task_type: str = "generation",
                  force: bool = False) -> dict:
    """Raise ``DatasetError`` for an empty or degenerate dataset; return simple stats.

    Degenerate (refused unless ``force``): all completions identical, or a classification
    set whose rows all carry one label (the model would learn a constant).
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
    labels = {r.get("label") for r in records if r.get("label") not in (None, "")}
    stats = {"rows": len(records), "distinct_completions": len(completions),
             "labels": sorted(map(str, labels))}
    if force:
        return stats
    if len(records) > 1 and len(completions) == 1:
        raise DatasetError(f"All {len(records)} training completions are identical "
                           f"({next(iter(completions))[:60]!r}); the model would learn a "
                           "constant.", hint="Synthesize more diverse examples, or pass "
                                             "--force to train anyway.")
    if task_type == "classification" and len(records) > 1 and len(labels) == 1:
        raise DatasetError(f"Every training row has the label {next(iter(labels))!r}.",
                           hint="Balance the labels (see the SELF-GUIDE label settings) or "
                                "pass --force to train anyway.")
    return stats


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


# --------------------------------------------------------------------------- tokenization

@dataclass
class Features:
    rows: list[dict]                       # input_ids, labels, attention_mask
    long_rows: list[dict] = field(default_factory=list)   # id, tokens (over the limit)
    prompt_tokens: int = 0
    completion_tokens: int = 0


def encode_record(tokenizer: Any, record: dict, *, chat: bool) -> tuple[list[int], list[int]]:
    """Token ids of the rendered prompt and of ``completion + eos``.

    The prompt goes through ``backends.hf.encode_prompt`` - the very ids the generator feeds
    the model at evaluation - and the completion is tokenized without special tokens.
    """
    from selfguide.backends.hf import encode_prompt

    p_ids = encode_prompt(tokenizer, record["prompt"], chat)
    c_ids = tokenizer(record["completion"], add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        c_ids = [*c_ids, tokenizer.eos_token_id]
    return list(p_ids), list(c_ids)


def build_features(tokenizer: Any, records: Sequence[dict], *, chat: bool, max_length: int,
                   long_rows: str = "drop") -> Features:
    """Tokenize records with prompt tokens masked (label -100); report over-long rows."""
    feats = Features(rows=[])
    for r in records:
        p_ids, c_ids = encode_record(tokenizer, r, chat=chat)
        total = len(p_ids) + len(c_ids)
        if total > max_length:
            feats.long_rows.append({"id": r.get("id"), "tokens": total})
            if long_rows == "error":
                raise DatasetError(f"Row {r.get('id')!r} has {total} tokens, more than "
                                   f"max_length={max_length}.",
                                   hint="Raise --max-length or set --long-rows drop.")
            if long_rows == "drop" or len(c_ids) >= max_length:
                continue
            p_ids = p_ids[total - max_length:]  # cut the prompt's start, keep the answer
        feats.prompt_tokens += len(p_ids)
        feats.completion_tokens += len(c_ids)
        feats.rows.append({"input_ids": p_ids + c_ids,
                           "labels": [IGNORE_INDEX] * len(p_ids) + c_ids,
                           "attention_mask": [1] * (len(p_ids) + len(c_ids))})
    return feats


class PadCollator:
    """Right-pad ``input_ids`` (pad id), ``labels`` (-100) and ``attention_mask`` (0)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        n = max(len(b["input_ids"]) for b in batch)

        def pad(key: str, value: int) -> Any:
            return torch.tensor([b[key] + [value] * (n - len(b[key])) for b in batch])

        return {"input_ids": pad("input_ids", self.pad_id), "labels": pad("labels", IGNORE_INDEX),
                "attention_mask": pad("attention_mask", 0)}


# --------------------------------------------------------------------------- config builders

def build_lora_config(cfg: TrainConfig) -> Any:
    """The peft ``LoraConfig`` for ``cfg`` (all linear layers by default)."""
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_module_list, bias="none", task_type="CAUSAL_LM")


def build_training_args(cfg: TrainConfig, output_dir: str | Path, *, has_val: bool,
                        use_cpu: bool = True) -> Any:
    """``transformers.TrainingArguments`` for ``cfg`` (no model needed)."""
    from transformers import TrainingArguments

    validate = has_val
    best = validate and cfg.select_best and cfg.save_strategy == "epoch"
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
        logging_strategy="steps", logging_steps=cfg.logging_steps,
        eval_strategy="epoch" if validate else "no",
        save_strategy=cfg.save_strategy, save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=best, metric_for_best_model="eval_loss" if best else None,
        greater_is_better=False if best else None,
        activation_checkpointing=cfg.gradient_checkpointing,
        seed=cfg.seed, data_seed=cfg.seed, use_cpu=use_cpu,
        bf16=False, fp16=False,  # dtypes come from the loaded model (NF4/bf16 compute)
        remove_unused_columns=False, report_to="none", disable_tqdm=True,
        prediction_loss_only=True,  # validation needs the loss, not 49k-wide logits per token
        include_num_input_tokens_seen="non_padding", dataloader_num_workers=0,
        save_only_model=False,
    )


# --------------------------------------------------------------------------- checkpoints

def _checkpoint_step(p: Path) -> int | None:
    try:
        return int(p.name.split("-", 1)[1]) if p.name.startswith("checkpoint-") else None
    except ValueError:
        return None


def is_complete_checkpoint(path: str | Path) -> bool:
    """True if ``path`` holds a loadable trainer state and loadable safetensors weights.

    Trainer writes weights, optimizer, scheduler, RNG state and finally
    ``trainer_state.json``; a kill before the end leaves a torn directory.
    """
    path = Path(path)
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    weights = sorted(path.glob("*.safetensors"))
    if not weights or not (path / "optimizer.pt").is_file():
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
    import hashlib

    h = hashlib.sha256()
    for name in ("train.jsonl", "val.jsonl"):
        p = Path(run_dir) / "dataset" / name
        h.update(name.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"") + b"\0")
    return h.hexdigest()[:16]


def last_complete_checkpoint(directory: str | Path) -> Path | None:
    """The highest-numbered complete ``checkpoint-N`` in ``directory`` (numeric order)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    cands = [(s, p) for p in directory.iterdir()
             if p.is_dir() and (s := _checkpoint_step(p)) is not None]
    for _, p in sorted(cands, reverse=True):
        if is_complete_checkpoint(p):
            return p
    return None


# --------------------------------------------------------------------------- progress callback

def make_events_callback(events: EventLog, total_steps: int, *, stream: Any = None) -> Any:
    """A ``TrainerCallback`` that writes progress/loss/eval events (step, epoch, loss, lr,
    tokens/s, elapsed, ETA)."""
    import sys

    from transformers import TrainerCallback

    class EventsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.progress: Progress | None = None
            self.t0 = time.time()
            self.tokens0 = 0

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.time()
            self.tokens0 = state.num_input_tokens_seen or 0
            total = state.max_steps or total_steps
            self.progress = Progress("train", total, events=events, done=state.global_step,
                                     unit="steps", stream=stream if stream is not None
                                     else sys.stderr)
            events.emit("train_begin", step=state.global_step, max_steps=total)

        def _tok_s(self, state) -> float:
            el = time.time() - self.t0
            return ((state.num_input_tokens_seen or 0) - self.tokens0) / el if el > 0 else 0.0

        def on_step_end(self, args, state, control, **kw):
            if self.progress is not None:
                seen = (state.num_input_tokens_seen or 0) - self.tokens0
                self.progress.update(1, tokens=seen - self.progress.tokens,
                                     epoch=round(state.epoch or 0.0, 4))

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            el = time.time() - self.t0
            eta = self.progress.eta if self.progress is not None else None
            if "loss" in logs:
                events.emit("loss", step=state.global_step, epoch=round(state.epoch or 0, 4),
                            loss=logs["loss"], lr=logs.get("learning_rate"),
                            tokens_per_s=round(self._tok_s(state), 1), elapsed=round(el, 2),
                            eta=eta)
            if "eval_loss" in logs:
                events.emit("eval", step=state.global_step, epoch=round(state.epoch or 0, 4),
                            eval_loss=logs["eval_loss"])

        def on_train_end(self, args, state, control, **kw):
            if self.progress is not None:
                self.progress.close()

    return EventsCallback()


# --------------------------------------------------------------------------- training

@dataclass
class TrainResult:
    adapter_dir: Path
    metrics: dict


def load_train_records(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """``dataset/train.jsonl`` and (optional) ``dataset/val.jsonl`` of a run."""
    if not (run_dir / "dataset" / "train.jsonl").is_file():
        raise DatasetError(f"No training set at {run_dir / 'dataset' / 'train.jsonl'}.",
                           hint="Run 'selfguide synthesize' and 'selfguide filter' first.")
    train = store.read_jsonl(run_dir / "dataset" / "train.jsonl")
    val = store.read_jsonl(run_dir / "dataset" / "val.jsonl")
    return train, val


def preflight(run_dir: str | Path, cfg: TrainConfig, *, model_cfg: ModelConfig | None = None
              ) -> Any:
    """Everything ``train`` can refuse before loading a model: a missing, empty or degenerate
    dataset, a bad model reference or weights, and a configuration whose estimated peak
    memory (at its ``max_length``, or the shortest row for auto) exceeds what is available.
    Returns the model's :class:`~selfguide.trainfit.ModelDims` (None for a hub id)."""
    from selfguide import models, trainfit

    run_dir = Path(run_dir)
    model_cfg = model_cfg or run_model_config(run_dir)
    records, _ = load_train_records(run_dir)
    check_dataset(records, task_type=run_task_type(run_dir), force=cfg.force)
    device = models.pick_device(model_cfg.device)
    cfg = cfg.resolve(device)
    src = models.resolve_model(model_cfg.model, trust_remote_code=model_cfg.trust_remote_code)
    path = models.checkpoint_dir(src)
    if path is None:
        return None
    dims = trainfit.model_dims(path)
    trainfit.check_memory(dims, cfg, cfg.max_length or 16, device=device)
    return dims


def run_model_config(run_dir: Path) -> ModelConfig:
    """The ``ModelConfig`` recorded in the run's ``config.json`` (defaults if absent)."""
    from selfguide.config import from_dict

    cfg = store.read_json(run_dir / "config.json", default={}) or {}
    return from_dict(ModelConfig, cfg.get("model") or {}, strict=False)


def run_task_type(run_dir: Path) -> str:
    task = store.read_json(run_dir / "task.json", default={}) or {}
    return task.get("task_type", "generation")


def train(run_dir: str | Path, cfg: TrainConfig, *, model_cfg: ModelConfig | None = None,
          events: EventLog | None = None, stream: Any = None) -> TrainResult:
    """Finetune the run's model on ``dataset/train.jsonl``; write ``train/adapter``."""
    run_dir = Path(run_dir)
    events = events or EventLog(None)
    model_cfg = model_cfg or run_model_config(run_dir)
    dims = preflight(run_dir, cfg, model_cfg=model_cfg)
    records, val_records = load_train_records(run_dir)
    stats = check_dataset(records, task_type=run_task_type(run_dir), force=cfg.force)
    if not val_records:
        records, val_records = split_validation(records, cfg, seed=cfg.seed)

    from selfguide import models, trainfit
    from selfguide.config import replace

    t_load = time.time()
    device = models.pick_device(model_cfg.device)
    cfg = cfg.resolve(device)
    lm = models.load_model(replace(model_cfg, precision=cfg.model_precision, device=device))
    model, tok = lm.model, lm.tokenizer
    chat = bool(model_cfg.chat and getattr(lm.info, "has_chat_template", False))
    events.emit("log", message=f"loaded {model_cfg.model} ({cfg.model_precision}) in "
                                f"{time.time() - t_load:.1f}s")
    max_length = cfg.max_length
    if dims is not None:
        longest = max(sum(map(len, encode_record(tok, r, chat=chat)))
                      for r in [*records, *val_records])
        max_length, why = trainfit.pick_max_length(dims, cfg, longest, device=device)
        trainfit.check_memory(dims, cfg, max_length, device=device)
        if longest > trainfit.LONG_ROW_TOKENS:
            events.emit("warning", message=f"rows are long: up to {longest} tokens; "
                                           f"max_length={max_length} ({why})")
    elif not max_length:
        max_length = 2048
    feats = build_features(tok, records, chat=chat, max_length=max_length,
                           long_rows=cfg.long_rows)
    vfeats = build_features(tok, val_records, chat=chat, max_length=max_length,
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

    set_training_attention(model, cfg, device)
    model = prepare_model(model, cfg)
    out = run_dir / "train"
    ckpt_dir = out / "checkpoints"
    args = build_training_args(cfg, ckpt_dir, has_val=bool(vfeats.rows), use_cpu=device == "cpu")
    steps_per_epoch = -(-len(feats.rows) // (cfg.batch_size * cfg.grad_accum))
    total = cfg.max_steps if cfg.max_steps > 0 else int(steps_per_epoch * cfg.epochs + 0.999)

    trainer = make_trainer(model=model, args=args, train_dataset=feats.rows,
                      eval_dataset=vfeats.rows or None, data_collator=PadCollator(tok.pad_token_id),
                      callbacks=[make_events_callback(events, total, stream=stream)])
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):  # our callback reports instead
        trainer.remove_callback(cb)
    # The data is part of what a checkpoint was trained on: after a re-filter or a new
    # synthesis, resuming the old checkpoints would silently return the old model.
    settings = {"train": to_dict(cfg), "model": to_dict(model_cfg),
                "data": dataset_fingerprint(run_dir)}
    settings_hash = store.config_hash(settings)
    prev = store.read_json(out / "train_config.json", default=None) or {}
    if ckpt_dir.exists() and prev.get("hash") != settings_hash:
        # Checkpoints of other settings (or of unknown provenance) must not be resumed.
        events.emit("log", message="training settings changed: starting from scratch")
        shutil.rmtree(ckpt_dir)
    resume = last_complete_checkpoint(ckpt_dir)
    if resume is not None:
        events.emit("log", message=f"resuming from {resume.name}")
    store.atomic_write_json(out / "train_config.json", {**settings, "hash": settings_hash})
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    wall = time.time() - t0

    adapter_dir = out / "adapter"
    manifest = {"base_fingerprint": lm.info.fingerprint, "model": model_cfg.model,
                "chat": chat, "method": cfg.method, "train_config": to_dict(cfg),
                "created": time.time()}
    save_adapter(trainer.model, tok, adapter_dir, manifest, full=cfg.method == "full")
    hist = trainer.state.log_history
    metrics = {
        "rows": len(feats.rows), "val_rows": len(vfeats.rows), "long_rows": len(feats.long_rows),
        "max_length": max_length,
        "dataset": stats, "steps": trainer.state.global_step,
        "train_loss": result.training_loss, "wall_s": round(wall, 2),
        "train_tokens": feats.prompt_tokens + feats.completion_tokens,
        "tokens_per_s": round(_tokens_seen(trainer) / wall, 1) if wall > 0 else None,
        "eval_losses": [{"epoch": h.get("epoch"), "eval_loss": h["eval_loss"]}
                        for h in hist if "eval_loss" in h],
        "best_checkpoint": Path(trainer.state.best_model_checkpoint).name
        if trainer.state.best_model_checkpoint else None,
        "resumed_from": resume.name if resume else None,
    }
    store.atomic_write_json(out / "metrics.json", metrics)
    events.emit("train_end", **{k: v for k, v in metrics.items() if k != "eval_losses"})
    return TrainResult(adapter_dir=adapter_dir, metrics=metrics)


def supports_logits_to_keep(model: Any) -> bool:
    """Whether ``model``'s forward can project only chosen positions onto the vocabulary."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


def completion_loss(model: Any, inputs: dict, num_items_in_batch: Any = None) -> tuple[Any, Any]:
    """Causal-LM loss on the completion tokens, projecting only their positions to logits.

    The same value as the model's own loss (mean over tokens with a label, or the sum over
    ``num_items_in_batch`` when gradient accumulation counts them), but the vocabulary
    projection and log-softmax run on the few completion positions instead of every prompt
    token: with ~6 answer tokens in a ~340-token row that is most of the lm_head's work.
    """
    import torch
    import torch.nn.functional as F

    labels = inputs["labels"]
    target = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = target != IGNORE_INDEX  # position t predicts token t+1
    out = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                logits_to_keep=keep)
    logits = out.logits.reshape(-1, out.logits.shape[-1]).float()
    loss = F.cross_entropy(logits, target[keep[:, :-1]], reduction="sum")
    denom = num_items_in_batch if num_items_in_batch is not None else max(int(keep.sum()), 1)
    return loss / denom, out


def make_trainer(*, model: Any, **kw: Any) -> Any:
    """A ``transformers.Trainer`` whose loss skips the vocabulary projection of prompt tokens.

    Falls back to the model's own loss for architectures without ``logits_to_keep``.
    """
    from transformers import Trainer

    if not supports_logits_to_keep(model):
        return Trainer(model=model, **kw)

    class CompletionTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # Trainer divides by the accumulation steps unless the loss was normalised by
            # num_items_in_batch (which it passes exactly when the model accepts loss kwargs).
            if not self.model_accepts_loss_kwargs:
                num_items_in_batch = None
            loss, out = completion_loss(model, inputs, num_items_in_batch)
            return (loss, out) if return_outputs else loss

    return CompletionTrainer(model=model, **kw)


def _tokens_seen(trainer: Any) -> int:
    return int(trainer.state.num_input_tokens_seen or 0)


def prepare_model(model: Any, cfg: TrainConfig) -> Any:
    """Wrap the base for training: k-bit prep + LoRA, LoRA, or all weights trainable.

    ``set_seed`` runs first so the LoRA initialisation (and a resumed run) is reproducible.
    """
    from transformers import set_seed

    set_seed(cfg.seed)
    if cfg.method == "full":
        model.train()
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    try:
        return get_peft_model(model, build_lora_config(cfg))
    except ValueError as exc:  # peft's NoMatchingPeftModuleError and friends
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                        if type(m).__name__.startswith("Linear") and "." in n})
        raise ConfigError(f"target_modules {cfg.target_modules!r} matches no layer of the "
                          f"model ({str(exc).splitlines()[0][:160]}).",
                          hint="Use 'all-linear' or some of: " + ", ".join(names[:20])
                          + ".") from exc


def set_training_attention(model: Any, cfg: TrainConfig, device: str) -> None:
    """Pick the attention kernel for training (eager on a CPU unless told otherwise)."""
    want = cfg.attention if cfg.attention != "auto" else ("eager" if device == "cpu" else None)
    if not want or not hasattr(model, "set_attn_implementation"):
        return
    try:
        model.set_attn_implementation(want)
    except (ValueError, ImportError) as e:  # a model that cannot: keep its default
        log.info("attention %s not available (%s); keeping the default", want, e)


def save_adapter(model: Any, tokenizer: Any, adapter_dir: Path, manifest: dict, *,
                 full: bool = False) -> None:
    """Write the adapter (or full model) as safetensors + manifest, replacing atomically."""
    adapter_dir = Path(adapter_dir)
    tmp = adapter_dir.with_name(f".{adapter_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    if full:
        tokenizer.save_pretrained(str(tmp))
    if not list(tmp.glob("*.safetensors")):
        raise SelfGuideError(f"Saving to {tmp} produced no safetensors file.")
    store.atomic_write_json(tmp / ADAPTER_MANIFEST, {**manifest, "kind": "full" if full
                                                    else "lora"})
    old = adapter_dir.with_name(f".{adapter_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if adapter_dir.exists():
        adapter_dir.rename(old)
    tmp.rename(adapter_dir)
    shutil.rmtree(old, ignore_errors=True)


def read_adapter_manifest(adapter_dir: str | Path) -> dict:
    """The ``selfguide_adapter.json`` of an adapter dir (``ModelError`` if missing)."""
    adapter_dir = Path(adapter_dir)
    man = store.read_json(adapter_dir / ADAPTER_MANIFEST, default=None)
    if not man or not isinstance(man, dict):
        raise ModelError(f"{adapter_dir} has no {ADAPTER_MANIFEST}.",
                         hint="Train it with 'selfguide train --run NAME'.")
    if not list(adapter_dir.glob("*.safetensors")):
        raise ModelError(f"{adapter_dir} has no safetensors weights; pickle files are refused.")
    if man.get("kind") != "full" and not (adapter_dir / "adapter_model.safetensors").is_file():
        # PEFT falls back to adapter_model.bin (torch.load) when this file is missing, even
        # if other *.safetensors files are present (reliability: tests/reliability).
        raise ModelError(f"{adapter_dir} has no adapter_model.safetensors; pickle adapters "
                         "are refused.", hint="Retrain the adapter with 'selfguide train'.")
    from selfguide.models import check_safetensors_file

    for w in sorted(adapter_dir.glob("*.safetensors")):
        check_safetensors_file(w, "adapter")
    return man


# --------------------------------------------------------------------------- merge

def merge(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write base + adapter merged into one bf16 model (safetensors + tokenizer).

    ``out_dir`` must be a new or empty directory (:func:`selfguide.outpaths.check_output_dir`,
    checked before the model is loaded); the model is built in a hidden sibling and moved
    into place, so a failure leaves nothing at ``out_dir``.
    """
    from selfguide import outpaths

    run_dir = Path(run_dir)
    out_dir = outpaths.check_output_dir(out_dir)
    adapter_dir = run_dir / "train" / "adapter"
    man = read_adapter_manifest(adapter_dir)
    from selfguide.evaluation import load_tuned

    lm, model = load_tuned(run_dir, precision="bf16", manifest=man)
    if man.get("kind") != "full":
        model = model.merge_and_unload()
    tmp = outpaths.staging_dir(out_dir)
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        lm.tokenizer.save_pretrained(str(tmp))
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise store._storage_error(exc, out_dir) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return outpaths.publish_dir(tmp, out_dir)
