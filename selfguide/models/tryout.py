"""Trying models on one input: a greedy completion, and a run's task input through its base
and finetuned models side by side (the studio's "try a prompt" and "try both models").

What it does: wraps a free-form input in the run's task prompt (the same
``prompts.task_prompt`` that synthesis, training and evaluation use) and decodes it greedily
(temperature 0), so a try is repeatable.

What it does not do: load models (``studio.app.resources`` caches them; ``evaluation`` builds the
base/tuned pair), score answers (``selfguide.evaluation.metrics``) or write anything to the run.
"""

from __future__ import annotations

import os
from typing import Any

from selfguide.runs.rundir import RunDir, as_run
from selfguide.settings.fields import SamplingConfig


def complete(generator: Any, prompt: str, *, chat: bool = True, max_new_tokens: int = 64) -> str:
    """One greedy completion of ``prompt`` by ``generator`` (``""`` when it returns none)."""
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=int(max_new_tokens))
    out = generator.generate([prompt], sampling, 1, chat=chat)
    return out[0][0] if out and out[0] else ""


def try_both(run: str | os.PathLike | RunDir, text: str, before: Any, after: Any, *,
             chat: bool = True, max_new_tokens: int = 48) -> dict[str, str]:
    """``{"prompt", "before", "after"}``: ``text`` in the run's task prompt, answered by
    the base (``before``) and the finetuned (``after``) generator. ``TaskError`` when the
    run has no task."""
    from selfguide.task.prompts import task_prompt

    task = as_run(run).read_task(required=True)
    prompt = task_prompt(task, text)
    return {"prompt": prompt,
            "before": complete(before, prompt, chat=chat, max_new_tokens=max_new_tokens),
            "after": complete(after, prompt, chat=chat, max_new_tokens=max_new_tokens)}


__all__ = ["complete", "try_both"]
