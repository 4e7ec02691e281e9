"""Will the model fit? The memory a model needs at a precision, estimated before loading.

What it does: :func:`count_params` reads a checkpoint's parameter count without its weights
(the safetensors headers of a folder, the tensor table of a GGUF file);
:func:`available_bytes` says how much memory the device has free (``$SELFGUIDE_MEMORY_BYTES``
overrides it, as for training; CUDA: ``torch.cuda.mem_get_info``; otherwise the kernel's
``MemAvailable``, psutil where there is no ``/proc/meminfo``); :func:`estimate` puts the two
together as a :class:`MemoryEstimate` (parameters × bytes per parameter at the precision, plus
a margin for activations, the KV cache and the runtime), and :func:`check` refuses with a
``ResourceError`` (what it needs, what is free, what to choose instead) when it does not
fit, and logs a warning when it is close.

What it does not do: resolve references or ``auto`` precisions
(:func:`selfguide.models.loading.memory_estimate` does, then calls this), or load anything.
The estimate is of the weights with a margin, not a measurement: training's larger needs
(gradients, optimizer, activations) are :mod:`selfguide.training.fit`'s.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import struct
from pathlib import Path

from selfguide.errors import ConfigError, ResourceError

log = logging.getLogger(__name__)

MEMORY_ENV = "SELFGUIDE_MEMORY_BYTES"  # the same override training's memory check reads
# bytes per parameter: NF4 is 0.5 plus its scales and the layers it leaves unquantized
# (embeddings, norms, the LM head); int8 keeps its outliers' columns in fp16
BYTES_PER_PARAM = {"4bit": 0.6, "8bit": 1.1, "bf16": 2.0, "fp32": 4.0}
MARGIN = 0.15               # activations, KV cache, allocator slack, relative to the weights
RUNTIME = 0.5 * 2**30       # fixed: CUDA context or the tokenizer and buffers
TIGHT = 0.85                # above this share of the free memory, a warning


def safetensors_shapes(path: str | os.PathLike) -> dict[str, list[int]]:
    """Tensor name -> shape from a ``.safetensors`` file's header (no weights read)."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    return {k: (v.get("shape") or []) for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict)}


def _safetensors_numel(path: Path) -> int:
    total = 0
    for shape in safetensors_shapes(path).values():
        numel = 1
        for d in shape:
            numel *= int(d)
        total += numel
    return total


_GGUF_NUMEL: dict[tuple, int] = {}


def _gguf_numel(path: Path) -> int:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _GGUF_NUMEL:  # the Model page asks on every rerun
        from gguf import GGUFReader

        _GGUF_NUMEL[key] = sum(int(t.n_elements) for t in GGUFReader(str(path)).tensors)
    return _GGUF_NUMEL[key]


def cached_hub_params(repo_id: str) -> int | None:
    """Parameters of a hub model already in the local Hugging Face cache (a snapshot with
    its ``*.safetensors``), from their headers; None when it is not downloaded yet (no
    network call: the load itself downloads)."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id, local_files_only=True)
    except (ImportError, OSError, ValueError):  # not cached, or an invalid id: no estimate
        return None
    return count_params(path)


def count_params(path: str | os.PathLike) -> int | None:
    """Parameters of a checkpoint folder or ``.gguf`` file from its headers, None when it
    has neither (a hub id); the reference must have passed ``resolve_model``."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".gguf":
        return _gguf_numel(p)
    files = sorted(p.glob("*.safetensors")) if p.is_dir() else []
    return sum(_safetensors_numel(f) for f in files) if files else None


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # kB
    return None


def available_bytes(device: str = "cpu") -> int:
    """Free memory on ``device``: ``$SELFGUIDE_MEMORY_BYTES``, else free GPU memory on
    CUDA (this rank's GPU), else the system's available RAM (MPS shares it) divided among
    the processes a multi-process launch runs on this node."""
    env = os.environ.get(MEMORY_ENV, "").strip()
    if env:
        try:
            return int(float(env))
        except ValueError as exc:
            raise ConfigError(f"${MEMORY_ENV}={env!r} is not a number of bytes.",
                              hint="Set it to a number of bytes, e.g. 8e9, or unset it.") from exc
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    free = _meminfo_available()
    if free is None:
        import psutil

        free = int(psutil.virtual_memory().available)
    from selfguide.training.dist import local_world_size

    return free // local_world_size()  # the processes of a launch on this node share its RAM


def need_bytes(n_params: int, precision: str) -> int:
    """Bytes to load ``n_params`` parameters at ``precision`` and run them, with the margin."""
    weights = n_params * BYTES_PER_PARAM.get(precision, 4.0)
    return int(weights * (1 + MARGIN) + RUNTIME)


def gb(n: float) -> str:
    """Bytes as the page and the messages write them (decimal GB, one decimal)."""
    return f"{n / 1e9:.1f} GB"


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """What loading a model needs against what is free; ``verdict`` is ``ok``, ``tight``
    (within :data:`TIGHT` of the free memory) or ``too_large``."""

    n_params: int
    precision: str
    device: str
    need: int
    available: int
    what: str = "load"   # or "convert": a GGUF is read at fp32 on the CPU once

    @property
    def verdict(self) -> str:
        if self.need > self.available:
            return "too_large"
        return "tight" if self.need > TIGHT * self.available else "ok"

    def summary(self) -> str:
        """e.g. ``needs ~1.2 GB at bf16, 7.9 GB available (cpu)``."""
        at = f"at {self.precision}" + (" to convert" if self.what == "convert" else "")
        return (f"needs ~{gb(self.need)} {at}, {gb(self.available)} available "
                f"({self.device})")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "verdict": self.verdict, "summary": self.summary()}


def estimate(n_params: int, precision: str, device: str, *, what: str = "load"
             ) -> MemoryEstimate:
    """The estimate for a model of ``n_params`` at a resolved precision on a device."""
    return MemoryEstimate(n_params=n_params, precision=precision, device=device,
                          need=need_bytes(n_params, precision),
                          available=available_bytes(device), what=what)


def _smaller(precision: str) -> list[str]:
    return [p for p in ("8bit", "4bit") if BYTES_PER_PARAM[p] < BYTES_PER_PARAM.get(precision, 4.0)]


def _alternatives(est: MemoryEstimate) -> str:
    smaller = _smaller(est.precision)
    fits = [p for p in smaller if need_bytes(est.n_params, p) <= est.available]
    parts = []
    if fits:
        parts.append(f"choose precision {fits[0]} (--precision {fits[0]}; 4bit/8bit need "
                     "bitsandbytes)")
    elif smaller:
        parts.append(f"choose precision {smaller[-1]}")
    parts += ["a smaller model", "another device with more memory (--device)",
              "or free memory"]
    return (", ".join(parts) + f". If you know better (swap, a shared box), ${MEMORY_ENV} "
            "sets the free memory to assume.")


def check(est: MemoryEstimate, ref: str) -> MemoryEstimate:
    """Raise ``ResourceError`` when ``est`` does not fit, warn when it is tight; return it."""
    size = f"{est.n_params / 1e9:.2f}B" if est.n_params >= 1e9 else f"{est.n_params / 1e6:.0f}M"
    if est.verdict == "too_large":
        if est.what == "convert":
            raise ResourceError(
                f"Model {ref!r} ({size} parameters) is a GGUF file, converted once before "
                f"loading; that {est.summary()}.",
                hint="Use the model's Hugging Face folder (safetensors) instead, a smaller "
                     "model, or free memory.")
        alt = _alternatives(est)
        lower = " or ".join(reversed(_smaller(est.precision)))
        raise ResourceError(f"Model {ref!r} ({size} parameters) is too large for this "
                            f"machine: it {est.summary()}.", hint=alt[0].upper() + alt[1:],
                            ui_hint=(f"Choose Precision {lower}, a smaller model" if lower
                                     else "Choose a smaller model") +
                            " or another Device, then load again.")
    if est.verdict == "tight":
        log.warning("model %s (%s parameters) %s: close to the limit", ref, size, est.summary())
    return est
