"""Seeds: one place that derives and applies them, so reruns reproduce.

What it does: :func:`derive_seed` turns a base seed and a purpose (``(seed, "annotate",
first_id)``) into an independent 31-bit seed, stable across processes and Python versions
(CRC-32, not ``hash()``); :func:`seeded` seeds torch for one block without disturbing the
caller's global RNG state (the backend seeds each batch with it); :func:`seed_training`
seeds python, numpy and torch before a model is wrapped for training (LoRA init).

What it does not do: choose the seeds (the configs' ``seed`` fields do).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed for ``parts`` (e.g. the config seed and a purpose)."""
    return zlib.crc32(":".join(map(str, parts)).encode()) & 0x7FFFFFFF


@contextlib.contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch for one block without disturbing the caller's global RNG state."""
    import torch

    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def seed_training(seed: int) -> None:
    """Seed every RNG training uses (python, numpy, torch: ``transformers.set_seed``)."""
    from transformers import set_seed

    set_seed(seed)
