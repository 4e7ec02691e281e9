"""Will this training configuration fit? Row lengths, the model's context and memory.

What it does, without loading model weights:

- :func:`model_dims` reads a checkpoint folder's ``config.json`` and the *headers* of its
  safetensors files: parameter count, layers, hidden size, heads, vocabulary, context, and
  the shapes of the linear layers LoRA would wrap.
- :func:`estimate_peak_bytes` estimates the peak memory of a training run: base weights at
  their precision, trainable parameters with their gradients and AdamW state, activations
  (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
  Models", eq. 2: ``s·b·h·(34 + 5·a·s/h)`` bytes per layer at 16 bit), the completion
  logits, and a fixed runtime overhead.
- :func:`check_memory` refuses a configuration whose estimate exceeds the available memory
  (``$SELFGUIDE_MEMORY_BYTES`` overrides what the machine reports, for tests and shared boxes).
- :func:`pick_max_length` derives ``max_length`` when it is 0 (auto): the longest row, at
  most the model's context and the longest sequence that fits the memory budget.
- :func:`check_rows_fit` answers before synthesis whether the rows this task will produce
  (instruction + demos + input + answer, the same prompt training uses) can be trained on.

What it does not do: train, or measure real memory use. The estimate is deliberately on the
high side; ``bench/`` holds measured figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from selfguide.errors import ConfigError, ResourceError
from selfguide.models.memory import BYTES_PER_PARAM, safetensors_shapes
from selfguide.settings.training import TrainConfig

RUNTIME_OVERHEAD = 1.2 * 2**30      # python + torch + tokenizer, measured ~1 GB on the CPU box
LONG_ROW_TOKENS = 512               # above this a note says rows are long
_NON_LORA = ("embed", "lm_head", "wte", "wpe", "norm")


@dataclasses.dataclass(frozen=True)
class ModelDims:
    n_params: int
    layers: int
    hidden: int
    heads: int
    vocab: int
    context: int
    linears: tuple[tuple[str, int, int], ...]  # (module name, in, out) of each 2-D weight

    def lora_params(self, r: int, target: str | list[str]) -> int:
        """Trainable LoRA parameters for rank ``r`` on ``target`` ('all-linear' or names)."""
        total = 0
        for name, n_in, n_out in self.linears:
            leaf = name.rsplit(".", 1)[-1]
            if (target == "all-linear" and not any(k in name for k in _NON_LORA)) or \
                    (target != "all-linear" and leaf in target):
                total += r * (n_in + n_out)
        return total


def model_dims(path: str | os.PathLike) -> ModelDims:
    """Dimensions of the checkpoint folder ``path`` (config.json + safetensors headers).

    The folder must have passed :func:`selfguide.models.ref.resolve_model` (headers checked).
    """
    path = Path(path)
    cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    cfg = cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg
    shapes: dict[str, list[int]] = {}
    for w in sorted(path.glob("*.safetensors")):
        shapes.update(safetensors_shapes(w))
    n_params = 0
    linears = []
    for name, shape in shapes.items():
        numel = 1
        for d in shape:
            numel *= int(d)
        n_params += numel
        if len(shape) == 2 and name.endswith(".weight"):
            linears.append((name[:-len(".weight")], int(shape[1]), int(shape[0])))
    hidden = int(cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model") or 1024)
    return ModelDims(
        n_params=n_params, layers=int(cfg.get("num_hidden_layers") or cfg.get("n_layer") or 1),
        hidden=hidden, heads=int(cfg.get("num_attention_heads") or cfg.get("n_head") or 1),
        vocab=int(cfg.get("vocab_size") or 32000),
        context=int(cfg.get("max_position_embeddings") or cfg.get("n_positions") or 2048),
        linears=tuple(linears))


def estimate_peak_bytes(dims: ModelDims, cfg: TrainConfig, seq_len: int) -> int:
    """Peak bytes of training ``cfg`` (method resolved) on rows of ``seq_len`` tokens."""
    method = cfg.method if cfg.method != "auto" else "lora"
    # an unresolved precision 'auto' counts as fp32 (the larger of what it can become)
    precision = {"qlora": "4bit", "full": "fp32"}.get(method, cfg.precision)
    base = dims.n_params * BYTES_PER_PARAM.get(precision, 4.0)
    trainable = dims.n_params if method == "full" else dims.lora_params(
        cfg.lora_r, cfg.target_module_list)
    optim = trainable * 16  # fp32 weight + gradient + two AdamW moments
    b, s, h, a = cfg.batch_size, seq_len, dims.hidden, dims.heads
    per_layer = s * b * h * (34 + 5 * a * s / h)
    layers = (dims.layers * 2 * s * b * h + per_layer) if cfg.gradient_checkpointing \
        else dims.layers * per_layer
    logits = b * min(s, 512) * dims.vocab * 4 * 2  # projected completion positions, + grad
    return int(base + optim + layers + logits + RUNTIME_OVERHEAD)


def available_bytes(device: str = "cpu") -> int:
    """Memory a training run may use: ``$SELFGUIDE_MEMORY_BYTES``, else free GPU memory on
    CUDA (this rank's GPU), else the available RAM shared by this node's ranks (the same
    figure the load check uses: :func:`selfguide.models.memory.available_bytes`)."""
    from selfguide.models import memory

    return memory.available_bytes(device)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def resolve_method(cfg: TrainConfig, dims: ModelDims | None, device: str,
                   seq_len: int = 16) -> TrainConfig:
    """``cfg.resolve(device)``; where ``method`` is auto and resolves to LoRA on a dense
    base that would not fit in memory (at ``seq_len``) while a 4-bit base would, QLoRA."""
    resolved = cfg.resolve(device)
    if cfg.method != "auto" or resolved.method != "lora" or dims is None:
        return resolved
    have = available_bytes(device)
    if estimate_peak_bytes(dims, resolved, seq_len) <= have:
        return resolved
    four_bit = dataclasses.replace(cfg, method="qlora").resolve(device)
    return four_bit if estimate_peak_bytes(dims, four_bit, seq_len) <= have else resolved


def check_memory(dims: ModelDims, cfg: TrainConfig, seq_len: int, *,
                 device: str = "cpu") -> int:
    """Raise ``ResourceError`` if the estimate exceeds the available memory; return it."""
    need, have = estimate_peak_bytes(dims, cfg, seq_len), available_bytes(device)
    if need > have:
        raise ResourceError(
            f"This training configuration needs about {_gib(need)} of memory "
            f"(method {cfg.method}, LoRA rank {cfg.lora_r}, batch {cfg.batch_size}, "
            f"{seq_len} tokens per row, {dims.n_params / 1e6:.0f}M parameters); "
            f"{_gib(have)} is available.",
            hint="Lower --lora-r, --batch-size or --max-length, turn on "
                 "--gradient-checkpointing true, or free memory.")
    return need


def fit_length(dims: ModelDims, cfg: TrainConfig, budget: int) -> int:
    """The longest row length (<= context) whose training estimate fits ``budget``."""
    lo, hi = 0, dims.context
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_peak_bytes(dims, cfg, mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def pick_max_length(dims: ModelDims, cfg: TrainConfig, longest: int, *,
                    device: str = "cpu") -> tuple[int, str]:
    """(max_length, why) for ``cfg.max_length == 0``: the longest row, within the context
    and the memory budget; an explicit ``cfg.max_length`` is returned unchanged."""
    if cfg.max_length:
        return cfg.max_length, "set"
    fits = fit_length(dims, cfg, available_bytes(device))
    limit = min(dims.context, fits)
    if longest <= limit:
        return max(16, longest), "longest row"
    why = "model context" if dims.context <= fits else "memory budget"
    return max(16, limit), why


# --------------------------------------------------------------------------- before synthesis

@dataclasses.dataclass(frozen=True)
class RowFit:
    row_tokens: int        # the longest demo-based row: instruction + demos + input + answer
    context: int
    max_length: int        # what training will use (derived when TrainConfig.max_length=0)
    note: str | None       # "rows are long ..." or None


def row_tokens(tokenizer: Any, task: Any, *, chat: bool) -> int:
    """Tokens of the longest row a task's synthetic data will have, estimated from its demos
    (synthetic inputs pass a length filter around the demos' lengths)."""
    from selfguide.task.prompts import task_prompt
    from selfguide.training.data import encode_record

    longest = 0
    for d in task.demos:
        p, c = encode_record(tokenizer, {"prompt": task_prompt(task, d.input),
                                         "completion": d.output}, chat=chat)
        longest = max(longest, len(p) + len(c))
    return longest


def check_rows_fit(task: Any, model_cfg: Any, train_cfg: TrainConfig | None = None) -> RowFit:
    """Refuse (``ConfigError``/``ResourceError``) before synthesis when the rows this task
    produces cannot be trained on; otherwise say what training will use.

    Loads only the tokenizer (and converts the embedded GGUF once, which synthesis needs
    anyway).
    """
    from selfguide.models import convert as model_convert
    from selfguide.models import loading as models
    from selfguide.models import ref as model_ref
    device = models.pick_device(model_cfg.device)
    train_cfg = train_cfg or TrainConfig()
    src = model_ref.resolve_model(model_cfg.model, trust_remote_code=model_cfg.trust_remote_code)
    path = model_convert.checkpoint_dir(src)
    if path is None:  # a hub id: nothing local to measure
        return RowFit(0, 0, train_cfg.resolve(device).max_length, None)
    dims = model_dims(path)
    train_cfg = resolve_method(train_cfg, dims, device, train_cfg.max_length or 16)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=model_cfg.trust_remote_code)
    chat = bool(model_cfg.chat and getattr(tok, "chat_template", None))
    need = row_tokens(tok, task, chat=chat)
    n_demos = len(task.demos)
    if train_cfg.max_length and need > train_cfg.max_length:
        raise ConfigError(
            f"Rows of task {task.name!r} will be about {need} tokens (every row carries the "
            f"instruction and {n_demos} demos), more than max_length={train_cfg.max_length}: "
            "training would drop them.",
            hint=f"Use --max-length 0 (auto) or at least {need}, or shorten the instruction "
                 "and demos.")
    if need > dims.context:
        raise ConfigError(
            f"Rows of task {task.name!r} will be about {need} tokens (the instruction and "
            f"{n_demos} demos), longer than the model's context of {dims.context} tokens.",
            hint="Shorten the instruction or the demos, or use a model with a longer context.")
    max_len, _ = pick_max_length(dims, train_cfg, need, device=device)
    if need > max_len:
        raise ResourceError(
            f"Rows of task {task.name!r} will be about {need} tokens; training rows that long "
            f"needs more memory than is available (at most {max_len} tokens fit).",
            hint="Lower the training --batch-size, turn on --gradient-checkpointing true, "
                 "or shorten the instruction and demos.")
    note = None
    if need > LONG_ROW_TOKENS:
        note = (f"rows are long: about {need} tokens each (the instruction and {n_demos} "
                f"demos); training will use max_length={max_len} and be slower")
    return RowFit(need, dims.context, max_len, note)
