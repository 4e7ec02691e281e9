"""Text generation backends: a tiny protocol and a registry by name.

A backend turns prompts into completions (``generate``) and scores fixed continuations
(``score_options``, used for calibrated labelling and label-constrained classification).
Implementations: ``hf`` (transformers, :mod:`selfguide.backends.hf`), ``openai`` (an
OpenAI-compatible server, :mod:`selfguide.backends.openai`) and ``fake`` (scripted, records
calls; :mod:`selfguide.backends.fake`). This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from selfguide.config import SamplingConfig
from selfguide.errors import ConfigError

# on_result(prompt_index, completions) is called as soon as a prompt's n completions exist.
ResultCallback = Callable[[int, list[str]], None]
# progress(done_prompts, total_prompts, generated_tokens)
ProgressCallback = Callable[[int, int, int], None]
CancelFlag = Callable[[], bool]


@runtime_checkable
class Generator(Protocol):
    """What every backend provides."""

    name: str

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig, n: int = 1, *,
                 chat: bool = False, on_result: ResultCallback | None = None,
                 progress: ProgressCallback | None = None,
                 cancel: CancelFlag | None = None) -> list[list[str]]:
        """Return ``n`` completions per prompt (same order as ``prompts``).

        ``chat`` wraps each prompt as a user message in the model's chat template (when it
        has one). ``cancel`` is checked between batches and raises ``Cancelled``.
        """
        ...

    def score_options(self, prompts: Sequence[str], options: Sequence[str], *,
                      chat: bool = False) -> list[list[float]]:
        """Total log-probability of each option as the continuation of each prompt."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` for this model."""
        ...


_REGISTRY: dict[str, Callable[..., Generator]] = {}


def register(name: str, factory: Callable[..., Generator]) -> None:
    _REGISTRY[name] = factory


def get_generator(name: str, **kwargs: Any) -> Generator:
    """Create a registered backend by name (``hf`` loads a model: see ``models.load``)."""
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
            from selfguide.models import load_tokenizer

            return OpenAIGenerator.from_config(tokenizer=load_tokenizer, **kw)

        register("openai", _openai)
