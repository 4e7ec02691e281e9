"""Text generation backends: a tiny protocol and a registry by name.

A backend turns prompts into completions (``generate``) and scores fixed continuations
(``score_options``, used for calibrated labelling and label-constrained classification).
Implementations: ``hf`` (transformers, :mod:`selfguide.backends.hf`), ``openai`` (an
OpenAI-compatible server, :mod:`selfguide.backends.openai`) and ``fake`` (scripted, records
calls; :mod:`selfguide.backends.fake`). This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfguide.backends.base import Generator
from selfguide.errors import ConfigError

__all__ = ["Generator", "available", "get_generator", "register"]

_REGISTRY: dict[str, Callable[..., Generator]] = {}


def register(name: str, factory: Callable[..., Generator]) -> None:
    _REGISTRY[name] = factory


def get_generator(name: str, **kwargs: Any) -> Generator:
    """Create a registered backend by name: THE way to build a generator.

    ``get_generator("hf", config=ModelConfig(...), batch_size=…)`` loads a model;
    ``get_generator("hf", loaded=lm)`` wraps a loaded one (see
    :meth:`selfguide.backends.hf.HFGenerator.from_config`); ``get_generator("fake",
    script=…)`` is the scripted test backend.
    """
    _ensure_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"Unknown backend {name!r}.",
                          hint=f"Available: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name](**kwargs)


def available() -> list[str]:
    _ensure_builtin()
    return sorted(_REGISTRY)


def _ensure_builtin() -> None:
    if "fake" not in _REGISTRY:
        from selfguide.backends.fake import FakeGenerator

        register("fake", FakeGenerator)
    if "hf" not in _REGISTRY:
        def _hf(**kw: Any) -> Generator:
            from selfguide.backends.hf import HFGenerator

            return HFGenerator.from_config(**kw)

        register("hf", _hf)
    if "openai" not in _REGISTRY:
        def _openai(**kw: Any) -> Generator:
            from selfguide.backends.openai import OpenAIGenerator
            from selfguide.models.loading import load_tokenizer

            return OpenAIGenerator.from_config(tokenizer=load_tokenizer, **kw)

        register("openai", _openai)
