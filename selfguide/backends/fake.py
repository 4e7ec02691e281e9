"""A scripted backend for tests: replays canned outputs and records every request.

Scripts:
- a callable ``script(prompt, sampling, i) -> str`` (``i`` = sample index), or
- a list of strings replayed in order (cycled), or
- a dict mapping a substring of the prompt to a string or list of strings (first match wins;
  ``"*"`` is the fallback).

``score_options`` uses ``scores(prompt, option) -> float`` if given, else prefers the
option that the script would produce for the prompt. Nothing here touches a model.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from selfguide.backends.base import CancelFlag, ProgressCallback, ResultCallback
from selfguide.errors import Cancelled
from selfguide.settings.fields import SamplingConfig


@dataclass
class FakeCall:
    method: str
    prompts: list[str]
    sampling: SamplingConfig | None
    n: int
    chat: bool
    options: list[str] | None = None


@dataclass
class FakeGenerator:
    script: Any = "ok"
    scores: Callable[[str, str], float] | None = None
    batch_size: int = 8
    name: str = "fake"
    calls: list[FakeCall] = field(default_factory=list)
    _cycle: Any = field(default=None, repr=False)

    def _one(self, prompt: str, sampling: SamplingConfig, i: int) -> str:
        s = self.script
        if callable(s):
            return s(prompt, sampling, i)
        if isinstance(s, str):
            return s
        if isinstance(s, dict):
            for key, val in s.items():
                if key != "*" and key in prompt:
                    return val[i % len(val)] if isinstance(val, list) else val
            val = s.get("*", "")
            return val[i % len(val)] if isinstance(val, list) else val
        if self._cycle is None:
            self._cycle = itertools.cycle(list(s))
        return next(self._cycle)

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig, n: int = 1, *,
                 chat: bool = False, on_result: ResultCallback | None = None,
                 progress: ProgressCallback | None = None,
                 cancel: CancelFlag | None = None) -> list[list[str]]:
        prompts = list(prompts)
        self.calls.append(FakeCall("generate", prompts, sampling, n, chat))
        out: list[list[str]] = []
        tokens = 0
        for start in range(0, len(prompts), self.batch_size):
            if cancel is not None and cancel():
                raise Cancelled("Generation cancelled.")
            for j, p in enumerate(prompts[start:start + self.batch_size], start=start):
                comps = [self._cut(self._one(p, sampling, i), sampling) for i in range(n)]
                out.append(comps)
                tokens += sum(self.count_tokens(c) for c in comps)
                if on_result is not None:
                    on_result(j, comps)
            if progress is not None:
                progress(len(out), len(prompts), tokens)
        return out

    @staticmethod
    def _cut(text: str, sampling: SamplingConfig) -> str:
        for s in sampling.stop:
            if s and s in text:
                text = text[: text.index(s)]
        return text

    def score_options(self, prompts: Sequence[str], options: Sequence[str], *,
                      chat: bool = False) -> list[list[float]]:
        self.calls.append(FakeCall("score_options", list(prompts), None, 1, chat, list(options)))
        out = []
        for p in prompts:
            if self.scores is not None:
                out.append([float(self.scores(p, o)) for o in options])
            else:
                pref = self._one(p, SamplingConfig(temperature=0.0), 0).strip().lower()
                rng = random.Random(p)
                out.append([(0.0 if o.strip().lower() == pref else -5.0) - rng.random() * 0.01
                            for o in options])
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split())
