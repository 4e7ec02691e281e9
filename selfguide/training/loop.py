"""The trainer side of finetuning: LoRA config, arguments, the model wrapper, the loss,
and the progress callback.

What it does: builds the peft ``LoraConfig`` and ``transformers.TrainingArguments`` from a
``TrainConfig``; wraps the base for QLoRA / LoRA / full training (:func:`prepare_model`);
makes a ``transformers.Trainer`` whose loss projects only the completion positions onto the
vocabulary and runs the prompt prefix a batch's rows share once (:func:`make_trainer`,
:func:`completion_loss`, :mod:`selfguide.training.prefix`); streams progress, loss and
validation events to ``events.jsonl`` through a ``TrainerCallback``.

What it does not do: read the run, tokenize rows (:mod:`selfguide.training.data`) or save the
adapter (:mod:`selfguide.models.adapters`). Heavy libraries are imported inside functions.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from selfguide.errors import ConfigError
from selfguide.runs.events import EventLog, Progress
from selfguide.settings.training import TrainConfig
from selfguide.training.data import IGNORE_INDEX, PadCollator
from selfguide.training.prefix import prefix_forward, rows_shared_prefix, shared_prefix_len

log = logging.getLogger(__name__)


def build_lora_config(cfg: TrainConfig) -> Any:
    """The peft ``LoraConfig`` for ``cfg`` (all linear layers by default)."""
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_module_list, bias="none", task_type="CAUSAL_LM")


def build_training_args(cfg: TrainConfig, output_dir: str | Path, *, has_val: bool,
                        use_cpu: bool = True, batches: tuple[int, int] | None = None) -> Any:
    """``transformers.TrainingArguments`` for ``cfg`` (no model needed); ``batches`` is
    (rows per forward, accumulated forwards) from :func:`plan_batches`, else ``cfg``'s."""
    from transformers import TrainingArguments

    rows, accum = batches or (cfg.batch_size, cfg.grad_accum)
    validate = has_val
    best = validate and cfg.select_best and cfg.save_strategy == "epoch"
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=rows, per_device_eval_batch_size=rows,
        gradient_accumulation_steps=accum,
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
        # Under DDP every parameter takes part in each step (LoRA or full): no search for
        # unused ones, which also breaks gradient checkpointing ("marked ready twice").
        ddp_find_unused_parameters=False,
    )


# --------------------------------------------------------------------------- batches and progress

# padded tokens one merged forward may hold: a quick training with the embedded model peaks
# at ~1 GB + ~2.9 MB a token, so 1024 keeps it under 4 GB (1536 let task199 reach 4.6 GB;
# bench/README.md "Merge budget and peak memory")
MERGE_TOKENS = 1024
EVAL_WORK = 0.35     # a validation token costs about a third of a training token (no backward)


def plan_batches(batch_size: int, grad_accum: int, longest: int, *, merge: bool = True,
                 max_tokens: int = MERGE_TOKENS, shared: int = 0) -> tuple[int, int]:
    """(rows per forward, accumulated forwards) for ``batch_size x grad_accum`` rows per step.

    With ``merge``, accumulated batches are run as one larger batch while it holds at most
    ``max_tokens`` padded tokens (rows of ``longest`` tokens): the same rows per optimizer
    step and the same loss (it is normalised by the completion tokens of the whole step),
    with fewer, larger matrix products, which a CPU runs faster. ``shared`` tokens that every
    row starts with are computed once per forward (:mod:`selfguide.training.prefix`), so they
    count once.
    """
    if not merge:
        return batch_size, grad_accum
    shared = min(max(shared, 0), max(longest - 1, 0))
    for k in range(grad_accum, 1, -1):
        held = batch_size * k * max(longest - shared, 1) + shared
        if grad_accum % k == 0 and held <= max_tokens:
            return batch_size * k, grad_accum // k
    return batch_size, grad_accum


def planned_work(row_tokens: list[int], val_tokens: int, *, total_steps: int,
                 steps_per_epoch: int) -> tuple[float, float]:
    """(work of the whole run, work of one validation) in training-token units.

    Each epoch trains on every row once; validation runs after each epoch and costs
    ``EVAL_WORK`` per token. Known before training, so the ETA at step 1 already weighs the
    steps by what they hold instead of counting them alike.
    """
    per_step = sum(row_tokens) / max(steps_per_epoch, 1)
    per_eval = EVAL_WORK * val_tokens
    evals = -(-total_steps // max(steps_per_epoch, 1)) if val_tokens else 0
    return per_step * total_steps + per_eval * evals, per_eval


def make_events_callback(events: EventLog, total_steps: int, *, stream: Any = None,
                         work: tuple[float, float] | None = None) -> Any:
    """A ``TrainerCallback`` that writes progress/loss/eval events (step, epoch, loss, lr,
    tokens/s, elapsed, ETA). ``work`` (:func:`planned_work`) makes the ETA follow tokens;
    its clock starts when the first step does, so trainer set-up is not taken for speed."""
    import sys

    from transformers import TrainerCallback

    total_work, eval_work = work if work is not None else (None, 0.0)

    class EventsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.progress: Progress | None = None
            self.t0 = time.monotonic()
            self.tokens0 = 0
            self.started = False

        def on_train_begin(self, args, state, control, **kw):
            if not state.is_world_process_zero:  # several processes: rank 0 reports
                return
            self.t0 = time.monotonic()
            self.tokens0 = state.num_input_tokens_seen or 0
            total = state.max_steps or total_steps
            left = None if total_work is None else max(0.0, total_work - self.tokens0)
            self.progress = Progress("train", total, events=events, done=state.global_step,
                                     unit="steps", stream=stream if stream is not None
                                     else sys.stderr, work_total=left)
            _replay_history(events, state)
            events.emit("train_begin", step=state.global_step, max_steps=total)

        def _tok_s(self, state) -> float:
            el = time.monotonic() - self.t0
            return ((state.num_input_tokens_seen or 0) - self.tokens0) / el if el > 0 else 0.0

        def on_step_begin(self, args, state, control, **kw):
            if self.progress is not None and not self.started:
                self.started = True
                self.progress.restart_clock()

        def on_step_end(self, args, state, control, **kw):
            if self.progress is not None:
                seen = (state.num_input_tokens_seen or 0) - self.tokens0
                new = seen - self.progress.tokens
                self.progress.update(1, tokens=new, work=new, epoch=round(state.epoch or 0.0, 4))

        def on_evaluate(self, args, state, control, **kw):
            if self.progress is not None:
                self.progress.work += eval_work

        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero:
                _emit_logs(events, state, logs or {}, time.monotonic() - self.t0,
                           self._tok_s(state), self.progress.eta if self.progress else None)

        def on_train_end(self, args, state, control, **kw):
            if self.progress is not None:
                self.progress.close()

    return EventsCallback()


def _replay_history(events: EventLog, state: Any) -> None:
    """A resumed training: the loss and validation points logged before the checkpoint
    (its ``log_history``), so the curve starts at step 1, not at the resumed step."""
    for logs in getattr(state, "log_history", None) or []:
        step = logs.get("step")
        if step is None or step > state.global_step:
            continue
        epoch = round(logs.get("epoch") or 0, 4)
        if "loss" in logs:
            events.emit("loss", step=step, epoch=epoch, loss=logs["loss"],
                        lr=logs.get("learning_rate"), replayed=True)
        if "eval_loss" in logs:
            events.emit("eval", step=step, epoch=epoch, eval_loss=logs["eval_loss"],
                        replayed=True)


def _emit_logs(events: EventLog, state: Any, logs: dict, elapsed: float, tok_s: float,
               eta: float | None) -> None:
    """The ``loss`` and ``eval`` events of one trainer log call."""
    epoch = round(state.epoch or 0, 4)
    if "loss" in logs:
        events.emit("loss", step=state.global_step, epoch=epoch, loss=logs["loss"],
                    lr=logs.get("learning_rate"), tokens_per_s=round(tok_s, 1),
                    elapsed=round(elapsed, 2), eta=eta)
    if "eval_loss" in logs:
        events.emit("eval", step=state.global_step, epoch=epoch, eval_loss=logs["eval_loss"])


def supports_logits_to_keep(model: Any) -> bool:
    """Whether ``model``'s forward can project only chosen positions onto the vocabulary."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


def completion_loss(model: Any, inputs: dict, num_items_in_batch: Any = None, *,
                    share_prefix: bool = False, stats: dict | None = None) -> tuple[Any, Any]:
    """Causal-LM loss on the completion tokens, projecting only their positions to logits.

    The same value as the model's own loss (mean over tokens with a label, or the sum over
    ``num_items_in_batch`` when gradient accumulation counts them), but the vocabulary
    projection and log-softmax run on the few completion positions instead of every prompt
    token: with ~6 answer tokens in a ~340-token row that is most of the lm_head's work.
    With ``share_prefix`` the tokens all rows start with run once
    (:mod:`selfguide.training.prefix`); ``stats`` (when given) counts the forwards and the
    row tokens that sharing did not recompute (``forwards``, ``shared``, ``saved_tokens``;
    ``off`` once the model's cache turned out not to be shareable).
    """
    import torch
    import torch.nn.functional as F

    labels = inputs["labels"]
    target = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = target != IGNORE_INDEX  # position t predicts token t+1
    ids, mask = inputs["input_ids"], inputs.get("attention_mask")
    out, n = None, shared_prefix_len(ids, mask, keep) if share_prefix else 0
    if n:
        out = prefix_forward(model, ids, mask, keep, n)
    if out is None:
        if n and stats is not None:  # this model's cache cannot be shared: stop trying
            stats["off"] = True
        n = 0
        out = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep)
    if stats is not None:
        stats["forwards"] = stats.get("forwards", 0) + 1
        stats["shared"] = stats.get("shared", 0) + bool(n)
        stats["saved_tokens"] = stats.get("saved_tokens", 0) + n * (ids.shape[0] - 1)
    logits = out.logits.reshape(-1, out.logits.shape[-1]).float()
    loss = F.cross_entropy(logits, target[keep[:, :-1]], reduction="sum")
    denom = num_items_in_batch if num_items_in_batch is not None else max(int(keep.sum()), 1)
    return loss / denom, out


def make_trainer(*, model: Any, share_prefix: bool = False, **kw: Any) -> Any:
    """A ``transformers.Trainer`` whose loss skips the vocabulary projection of prompt tokens
    and, with ``share_prefix``, runs the prefix the rows of a batch share once
    (``trainer.prefix_stats`` counts it; the first model whose cache cannot be shared turns
    it off). Falls back to the model's own loss for architectures without ``logits_to_keep``.
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
            stats = self.prefix_stats
            loss, out = completion_loss(model, inputs, num_items_in_batch, stats=stats,
                                        share_prefix=share_prefix and not stats.get("off"))
            if num_items_in_batch is not None and self.args.average_tokens_across_devices:
                # num_items_in_batch counts the tokens of every rank, and DDP averages the
                # gradients over ranks: as Trainer's own loss, scale back by the ranks.
                n = self.args.n_gpu if self.args.n_gpu > 1 else self.accelerator.num_processes
                loss = loss * n
            return (loss, out) if return_outputs else loss

    trainer = CompletionTrainer(model=model, **kw)
    trainer.prefix_stats = {}
    return trainer


def prepare_model(model: Any, cfg: TrainConfig) -> Any:
    """Wrap the base for training: k-bit prep + LoRA, LoRA, or all weights trainable.

    Seeding runs first so the LoRA initialisation (and a resumed run) is reproducible.
    """
    from selfguide.seeding import seed_training

    seed_training(cfg.seed)
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


def tensorboard_callback(log_root: Path | None) -> Any:
    """transformers' ``TensorBoardCallback`` writing into a new ``log_root/<time>`` folder
    (one per training, so TensorBoard shows each as its own run); None without a folder or
    when ``tensorboard`` is not installed (training then logs to events.jsonl only)."""
    if log_root is None:
        return None
    from transformers.integrations import TensorBoardCallback, is_tensorboard_available

    if not is_tensorboard_available():
        return None
    cb = TensorBoardCallback()
    cb.logging_dir = str(Path(log_root) / time.strftime("%Y%m%d-%H%M%S"))
    return cb


def build_trainer(model: Any, tok: Any, cfg: TrainConfig, feats: Any, vfeats: Any,
                  ckpt_dir: Path, *, device: str, events: EventLog, stream: Any = None,
                  tensorboard_dir: Path | None = None) -> Any:
    """The ready trainer: attention picked, the model wrapped (:func:`prepare_model`), the
    arguments built and our events callback in place of transformers' printers (and,
    beside it, TensorBoard's, :func:`tensorboard_callback`)."""
    from selfguide.models.libs import import_bitsandbytes

    import_bitsandbytes()  # before transformers' trainer imports peft, which imports it
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    set_training_attention(model, cfg, device)
    model = prepare_model(model, cfg)
    from selfguide.training import dist as train_dist
    lengths = [len(r["input_ids"]) for r in feats.rows]
    # one process only: under DDP/FSDP two forwards before one backward would trip the
    # gradient hooks; checkpointed layers keep no cache to share
    share = cfg.share_prefix and not cfg.gradient_checkpointing and train_dist.world_size() == 1
    # merged only on the CPU, where it was measured; on an accelerator batch_size is
    # usually what bounds memory, and a merged batch would hold more
    batches = plan_batches(cfg.batch_size, cfg.grad_accum, max(lengths),
                           merge=cfg.merge_batches and device == "cpu",
                           shared=rows_shared_prefix(feats.rows) if share else 0)
    args = build_training_args(cfg, ckpt_dir, has_val=bool(vfeats.rows), use_cpu=device == "cpu",
                               batches=batches)
    # one optimizer step takes batch_size x grad_accum rows on every rank
    global_batch = cfg.batch_size * cfg.grad_accum * train_dist.world_size()
    steps_per_epoch = -(-len(feats.rows) // global_batch)
    total = cfg.max_steps if cfg.max_steps > 0 else int(steps_per_epoch * cfg.epochs + 0.999)
    # num_input_tokens_seen counts every rank's tokens, so the plan covers all rows
    work = planned_work(lengths,
                        sum(len(r["input_ids"]) for r in vfeats.rows),
                        total_steps=total, steps_per_epoch=steps_per_epoch)
    trainer = make_trainer(model=model, share_prefix=share, args=args, train_dataset=feats.rows,
                           eval_dataset=vfeats.rows or None,
                           data_collator=PadCollator(tok.pad_token_id),
                           callbacks=[make_events_callback(events, total, stream=stream,
                                                           work=work)])
    tb = tensorboard_callback(tensorboard_dir)
    if tb is not None:  # report_to stays "none": this one callback, into the run's folder
        trainer.add_callback(tb)
    for cb in (PrinterCallback, ProgressCallback):  # our callback reports instead
        trainer.remove_callback(cb)
    if train_dist.strategy() == "fsdp":
        train_dist.wrap_policy_for_peft(trainer)
    return trainer


def warm_up(trainer: Any, *, rows: int | None = None) -> float:
    """One forward and backward pass on the ``rows`` longest training rows, before training.

    A process's first passes pay one-off costs that later steps do not (kernel and
    thread-pool set-up, lazy initialisation, memory the allocator faults in as batches grow).
    Run here, outside the step clock, they no longer inflate the rate the ETA at step 1 is
    computed from. ``rows`` defaults to the rows of one forward
    (``per_device_train_batch_size``, a merged batch included), taken longest first so the
    memory of the largest batch is in place (and an out-of-memory shows before step 1); a
    smaller or shorter pass leaves part of the cost to step 1 (bench/README.md "Warm-up pass
    and the allocator"). It goes through the trainer's own loss (the shared-prefix path the
    steps take) and leaves no trace: gradients are cleared; the RNG state (dropout), the
    mode and the prefix counters are restored. Returns the seconds it took.
    """
    import torch

    t0 = time.monotonic()
    data = trainer.train_dataset
    rows = rows or trainer.args.per_device_train_batch_size
    longest = sorted(range(len(data)), key=lambda i: -len(data[i]["input_ids"]))[:rows]
    batch = trainer.data_collator([data[i] for i in longest])
    batch = {k: v.to(trainer.args.device) for k, v in batch.items()}
    model = trainer.model
    was_training = model.training
    stats = dict(getattr(trainer, "prefix_stats", {}))
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    model.train()
    try:
        trainer.compute_loss(model, batch).backward()
    finally:
        model.zero_grad(set_to_none=True)
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        model.train(was_training)
        if hasattr(trainer, "prefix_stats"):
            trainer.prefix_stats = stats
    return time.monotonic() - t0
