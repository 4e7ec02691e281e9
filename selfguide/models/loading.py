"""Load causal language models, and identify base checkpoints.

What it does:

- :func:`load_model` preflights a model reference (:func:`selfguide.models.ref.resolve_model`),
  converts GGUF once (:mod:`selfguide.models.convert`) and loads a model + tokenizer in
  ``4bit`` (bitsandbytes NF4, double quant, bf16 compute where bf16 is native, else fp32),
  ``8bit``, ``bf16`` or ``fp32`` on cuda/mps/cpu and reports what it loaded
  (:class:`ModelInfo`). Every ``from_pretrained`` passes ``trust_remote_code`` explicitly
  and ``use_safetensors=True``.
- :func:`check_quantization` refuses 4bit/8bit early where bitsandbytes cannot provide it.
- :func:`memory_estimate` says, from the checkpoint's headers, what loading needs at the
  resolved precision against the free memory (:mod:`selfguide.models.memory`);
  :func:`load_model` refuses a model too large for it before converting or loading.
- :func:`base_fingerprint` identifies a base checkpoint (adapters record it).

What it does not do: generate text (build a generator with
``selfguide.backends.get_generator("hf", ...)``), train or merge adapters
(:mod:`selfguide.models.adapters`). Heavy libraries (torch, transformers) are imported inside
functions only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from selfguide.errors import (
    ConfigError,
    ModelError,
    ModelNotFound,
    QuantizationUnavailable,
    RemoteCodeRefused,
    UnsafeWeights,
    UnsupportedModel,
)
from selfguide.models import allocator, hardware, libs, memory
from selfguide.models.convert import CONVERSION_MARKER, checkpoint_dir, converted_dir, file_key
from selfguide.models.ref import EMBEDDED, ModelSource, resolve_model
from selfguide.settings.fields import ModelConfig

log = logging.getLogger(__name__)

MIN_BNB_VERSION = (0, 49)


# --------------------------------------------------------------------------- fingerprint

def base_fingerprint(path: str | os.PathLike) -> str:
    """A stable id of a base checkpoint folder: config.json, the safetensors index, and per
    weight file its name, size and a hash of its first and last MiB."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_file():  # e.g. a .gguf
        h.update(p.name.encode())
        h.update(file_key(p).encode())
        return h.hexdigest()[:24]
    cfg = p / "config.json"
    if not cfg.is_file():
        raise ModelNotFound(f"Cannot fingerprint {p}: no config.json.")
    h.update(cfg.read_bytes())
    index = p / "model.safetensors.index.json"
    if index.is_file():
        h.update(index.read_bytes())
    for w in sorted(p.glob("*.safetensors")):
        h.update(w.name.encode())
        h.update(file_key(w).encode())
    return h.hexdigest()[:24]


# --------------------------------------------------------------------------- load

@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What was loaded; ``to_dict()`` is JSON-able."""

    ref: str
    kind: str
    path: str
    precision: str
    device: str
    dtype: str
    n_params: int
    memory_bytes: int
    load_seconds: float
    fingerprint: str
    has_chat_template: bool
    context_length: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return (f"{self.ref} ({self.kind}) on {self.device}, {self.precision}/{self.dtype}, "
                f"{_human(self.n_params)} params, {self.memory_bytes / 2**20:.1f} MiB, "
                f"loaded in {self.load_seconds:.1f}s")


def _human(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


@dataclasses.dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    info: ModelInfo


def pick_device(device: str = "auto") -> str:
    """``auto`` → cuda > mps > cpu; an explicit device that is unavailable raises."""
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device == "cuda" and not cuda:
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available.",
                          hint="Use device 'auto' or 'cpu'.")
    if device == "mps" and not mps:
        raise ConfigError("device 'mps' was asked for but Apple MPS is not available.",
                          hint="Use device 'auto' or 'cpu'.")
    return device


def pick_precision(precision: str, device: str) -> str:
    """``auto`` → 4bit on CUDA; on a CPU bf16 where it is native, else fp32; fp32 on MPS."""
    if precision != "auto":
        return precision
    return "4bit" if device == "cuda" else hardware.dense_precision(device)


def _bnb_version() -> tuple[int, ...] | None:
    """The importable bitsandbytes version, or None when it cannot be imported."""
    if libs.import_bitsandbytes() is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return tuple(int(x) for x in re.findall(r"\d+", version("bitsandbytes"))[:3])
    except PackageNotFoundError:
        return None


def check_quantization(precision: str, device: str) -> None:
    """Refuse 4bit/8bit early (before any load) where bitsandbytes cannot provide it."""
    if precision not in ("4bit", "8bit"):
        return
    alt = "Choose precision bf16 or fp32"
    ver = _bnb_version()
    if ver is None:
        raise QuantizationUnavailable(
            f"{precision} needs bitsandbytes, which is not installed or cannot be imported.",
            hint=f"pip install 'bitsandbytes>=0.49' (CPU needs >= 0.49), or {alt.lower()}.")
    if device == "mps":
        raise QuantizationUnavailable(f"{precision} is not available on Apple MPS.",
                                      hint=f"{alt}, or run on a CUDA GPU or the CPU.")
    if device == "cpu" and ver < MIN_BNB_VERSION:
        raise QuantizationUnavailable(
            f"{precision} on the CPU needs bitsandbytes >= 0.49 (found "
            f"{'.'.join(map(str, ver))}).",
            hint=f"pip install -U 'bitsandbytes>=0.49', or {alt.lower()}.")


def _quant_kwargs(precision: str, device: str) -> dict:
    import torch
    from transformers import BitsAndBytesConfig

    # "cuda" as the index of the current GPU: under DDP each rank binds its own
    # (torch.cuda.set_device) and accelerate refuses a 4-bit model mapped to plain "cuda".
    target: str | int = torch.cuda.current_device() if device == "cuda" else device
    # bf16 compute unless the CPU only emulates it (then fp32: several times faster there)
    compute = torch.bfloat16 if device != "cpu" or hardware.bf16_is_fast("cpu") else torch.float32
    if precision == "4bit":
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
        return {"quantization_config": q, "dtype": compute, "device_map": {"": target}}
    if precision == "8bit":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True),
                "dtype": torch.float16 if device == "cuda" else torch.float32,
                "device_map": {"": target}}
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return {"dtype": dtype}


def count_parameters(model: Any) -> int:
    """Parameters of ``model``, counting packed 4-bit weights at their logical size."""
    total = 0
    for p in model.parameters():
        qs = getattr(p, "quant_state", None)
        shape = getattr(qs, "shape", None)
        total += int(_prod(shape)) if shape is not None else p.numel()
    return total


def _prod(shape: Any) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def context_length(model: Any, tokenizer: Any = None) -> int:
    """The model's context window in tokens."""
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    v = getattr(tokenizer, "model_max_length", None)
    return v if isinstance(v, int) and 0 < v < 1_000_000 else 2048


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Left padding for generation; a tokenizer without a pad token pads with EOS."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        elif tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            raise UnsupportedModel("The tokenizer has no pad, end-of-sequence or unknown token.",
                                   hint="Set tokenizer.pad_token in the model folder.")
    return tokenizer


def memory_estimate(cfg: ModelConfig, *, src: ModelSource | None = None,
                    device: str | None = None, precision: str | None = None,
                    roots: list[str | os.PathLike] | None = None) -> list[memory.MemoryEstimate]:
    """What loading ``cfg.model`` needs against what is free, from its headers only: the
    load at the resolved precision on the resolved device, and for a GGUF not converted yet
        the one-time conversion (fp32, on the CPU) first. A hub id is estimated from the local
    Hugging Face cache when it was downloaded before; empty otherwise (nothing local)."""
    src = src or resolve_model(cfg.model, roots=roots, trust_remote_code=cfg.trust_remote_code)
    device = device or pick_device(cfg.device)
    precision = precision or pick_precision(cfg.precision, device)
    n = memory.count_params(src.path) if src.path is not None else \
        memory.cached_hub_params(str(cfg.model)) if src.kind == "hub" else None
    if not n:
        return []
    out = []
    if src.kind in (EMBEDDED, "gguf") and \
            not (converted_dir(src.path) / CONVERSION_MARKER).is_file():
        out.append(memory.estimate(n, "fp32", "cpu", what="convert"))
    out.append(memory.estimate(n, precision, device))
    return out


def load_model(cfg: ModelConfig | None = None, *, roots: list[str | os.PathLike] | None = None
               ) -> LoadedModel:
    """Preflight, (convert,) and load ``cfg.model`` with its tokenizer. See module docstring."""
    cfg = cfg or ModelConfig()
    src = resolve_model(cfg.model, roots=roots, trust_remote_code=cfg.trust_remote_code)
    device = pick_device(cfg.device)
    precision = pick_precision(cfg.precision, device)
    check_quantization(precision, device)
    for est in memory_estimate(cfg, src=src, device=device, precision=precision):
        memory.check(est, cfg.model)
    if (note := hardware.slow_bf16_note(precision, device)) is not None:
        log.warning(note)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    allocator.keep_freed_memory()  # the loops that follow reuse freed memory (allocator.py)
    libs.quiet_deprecations()
    t0 = time.monotonic()  # after the imports: load time is conversion + reading weights
    path = checkpoint_dir(src)
    target = str(path) if path is not None else src.ref
    kwargs = _quant_kwargs(precision, device)
    if precision == "8bit":  # bnb logs on every int8 matmul that inputs are cast to fp16
        logging.getLogger("bitsandbytes.autograd._functions").addFilter(_drop_int8_cast_notes)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            target, trust_remote_code=cfg.trust_remote_code, use_safetensors=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(target, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise _load_error(exc, cfg.model) from exc
    if "quantization_config" not in kwargs:
        model.to(device)
    elif precision == "4bit" and device == "cpu":
        _disable_unpackable_cpu_4bit(model)
    model.eval()
    prepare_tokenizer(tokenizer)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if path is None:
        path = _hub_snapshot(src.ref)
    fp = base_fingerprint(path) if path is not None else hashlib.sha256(
        f"hub:{src.ref}".encode()).hexdigest()[:24]
    info = ModelInfo(
        ref=cfg.model, kind=src.kind, path=str(path or src.ref), precision=precision,
        device=device, dtype=str(getattr(model, "dtype", torch.float32)).replace("torch.", ""),
        n_params=count_parameters(model), memory_bytes=int(model.get_memory_footprint()),
        load_seconds=round(time.monotonic() - t0, 3), fingerprint=fp,
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
        context_length=context_length(model, tokenizer))
    log.info("loaded %s", info.summary())
    return LoadedModel(model=model, tokenizer=tokenizer, info=info)


def _drop_int8_cast_notes(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("MatMul8bitLt")


def _disable_unpackable_cpu_4bit(model: Any) -> int:
    """Keep bitsandbytes' CPU 4-bit fast path off for layers it cannot repack.

    bitsandbytes 0.50 repacks NF4 weights for its AVX512-BF16 CPU kernel on the first
    inference call; that reshape fails for layers whose input width is not a multiple of the
    quantization block size (e.g. tiny test models). Such layers use the generic kernel.
    """
    changed = 0
    for mod in model.modules():
        qs = getattr(getattr(mod, "weight", None), "quant_state", None)
        if qs is None or not getattr(mod, "support_avx512bf16_for_cpu", False):
            continue
        shape, block = getattr(qs, "shape", None), getattr(qs, "blocksize", 64)
        if shape is not None and len(shape) == 2 and int(shape[1]) % int(block):
            mod.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def _hub_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - the fingerprint then falls back to the hub id
        return None


def _load_error(exc: Exception, ref: str) -> ModelError:
    msg = str(exc)
    if "trust_remote_code" in msg:
        return RemoteCodeRefused(f"{ref!r} needs its own Python code (trust_remote_code), "
                                 "which is not granted.",
                                 hint="Only if you trust its author: set trust_remote_code=true.")
    if "safetensors" in msg.lower():
        return UnsafeWeights(f"{ref!r} has no safetensors weights: {msg.splitlines()[0]}",
                             hint="Use a model published with .safetensors files.")
    return ModelError(f"Could not load model {ref!r}: {msg.splitlines()[0] if msg else exc!r}",
                      hint="Check that the folder is a complete Hugging Face causal LM.")


def load_tokenizer(cfg: ModelConfig, *, roots: list[str | os.PathLike] | None = None) -> Any:
    """The tokenizer of ``cfg.model`` without its weights; None for a hub id with nothing
    local (the ``openai`` backend's chat template and token counts)."""
    src = resolve_model(cfg.model, roots=roots, trust_remote_code=cfg.trust_remote_code)
    path = checkpoint_dir(src)
    if path is None:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=cfg.trust_remote_code)
