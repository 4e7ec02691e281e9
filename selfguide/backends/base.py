"""The backend protocol: what every text generation backend provides, and its callbacks.

What it does: declares :class:`Generator` (``generate``, ``score_options``,
``count_tokens``) and the callback types. What it does not do: implement or register
backends (:mod:`selfguide.backends`). Importing it is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from selfguide.settings.fields import SamplingConfig

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
