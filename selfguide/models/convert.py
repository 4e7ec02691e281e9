"""The GGUF → safetensors conversion cache.

What it does: :func:`convert_gguf` converts a GGUF file once into a cached safetensors
checkpoint (``$SELFGUIDE_CACHE`` or ``~/.cache/selfguide``), written into a temporary
directory and renamed into place under a file lock, so a killed conversion never leaves a
half checkpoint that a later load would pick up. :func:`checkpoint_dir` is the folder
transformers loads for a :class:`~selfguide.models.ref.ModelSource`.

What it does not do: check references (:mod:`selfguide.models.ref`) or load models
(:mod:`selfguide.models.loading`). torch/transformers are imported inside functions only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from selfguide.errors import UnsupportedModel
from selfguide.models.ref import EMBEDDED, ModelSource, embedded_gguf

CACHE_ENV = "SELFGUIDE_CACHE"
CONVERSION_MARKER = "selfguide_conversion.json"


def cache_dir() -> Path:
    """The conversion cache: ``$SELFGUIDE_CACHE`` or ``~/.cache/selfguide``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "selfguide").expanduser()



def file_key(path: Path) -> str:
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
    return cache_dir() / "converted" / f"{stem}-{file_key(p)}"


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

    t0 = time.monotonic()
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
    _save_tokenizer(tok, out)
    marker = {"source": str(src), "source_key": file_key(src),
              "seconds": round(time.monotonic() - t0, 2), "created": time.time()}
    (out / CONVERSION_MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
    del model


TOKENIZER_PROBE = "Hello world, it's 2024!\n  two  spaces\tand ünïcödé 日本語 <|x|>"


def _save_tokenizer(tok: Any, out: Path) -> None:
    """Save the tokenizer transformers built from the GGUF so that it loads back as itself.

    A family's tokenizer class may rebuild its own pipeline from the saved vocabulary
    (transformers 5's ``GemmaTokenizer``: sentencepiece-style, whatever the GGUF's tokenizer
    was); when the reloaded one encodes differently, the folder names the generic class,
    which loads ``tokenizer.json`` exactly as saved.
    """
    tok.save_pretrained(out)
    want = tok(TOKENIZER_PROBE)["input_ids"]
    if _reload(out)(TOKENIZER_PROBE)["input_ids"] == want:
        return
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    if _reload(out)(TOKENIZER_PROBE)["input_ids"] != want:
        raise UnsupportedModel(f"The tokenizer of {out.name} does not load back as itself "
                               "after conversion.",
                               hint="Use the model's Hugging Face folder instead of its GGUF.")


def _reload(out: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(out), trust_remote_code=False)


def embedded_checkpoint() -> Path:
    """The cached safetensors conversion of the embedded GGUF (converted on first use)."""
    return convert_gguf(embedded_gguf())


def checkpoint_dir(src: ModelSource) -> Path | None:
    """The local folder transformers will load for ``src`` (converting GGUF if needed)."""
    if src.kind in (EMBEDDED, "gguf"):
        assert src.path is not None
        return convert_gguf(src.path)
    return src.path
