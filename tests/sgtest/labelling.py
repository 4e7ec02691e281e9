"""Shared test helpers (moved from tests/methods/test_selfguide_labelling.py): SMALL, LuckyDemos, TASK."""

from __future__ import annotations

import random

from selfguide.backends.fake import FakeGenerator
from selfguide.methods.selfguide.config import SynthesisConfig
from selfguide.task.spec import Demo, TaskSpec
from sgtest.selfguide import asked_label

POS = ["great", "lovely", "superb", "fun", "charming"]


NEG = ["dull", "awful", "boring", "weak", "slow"]


TASK = TaskSpec(name="sent", instruction="Is the review positive or negative?",
                demos=(Demo("great fun and a lovely cast", "positive"),
                       Demo("dull and boring from start to end", "negative"),
                       Demo("superb, charming little film", "positive"),
                       Demo("weak script and slow pacing", "negative")),
                task_type="classification", labels=("positive", "negative"),
                metric="exact_match")


def truth(prompt: str) -> str:
    last = prompt.rsplit("Input:", 1)[1]
    return "positive" if sum(w in last for w in POS) >= sum(w in last for w in NEG) \
        else "negative"


class ProtocolFake(FakeGenerator):
    """Knows the task in one protocol only; in the other it answers ``stuck`` (or, with
    ``stuck=None``, text that names no label)."""

    def __init__(self, good: str, stuck: str | None = "negative", **kw):
        super().__init__(**kw)
        self.good, self.stuck = good, stuck

    def _answer(self, prompt: str, chat: bool) -> str:
        target = asked_label(prompt, ("positive", "negative"))
        if target:
            r = random.Random(prompt)
            return f" The {r.choice(POS if target == 'positive' else NEG)} " \
                   f"{r.choice(['film', 'plot', 'cast', 'ending'])} {r.randint(0, 999)}."
        if (chat and self.good == "chat") or (not chat and self.good == "plain"):
            return truth(prompt)
        return self.stuck if self.stuck is not None else "I think it depends on the reader"

    def generate(self, prompts, sampling, n=1, *, chat=False, **kw):
        self.script = lambda p, s, i: self._answer(p, chat)
        return super().generate(prompts, sampling, n, chat=chat, **kw)

    def score_options(self, prompts, options, *, chat=False):
        self.calls.append(None)
        return [[0.0 if o.strip() == self._answer(p, chat) else -3.0 for o in options]
                for p in prompts]


SMALL = SynthesisConfig(rounds=2, prompts_per_round=10, n_samples=3, annotate_batch=8,
                        probe_inputs=6)


class LuckyDemos(ProtocolFake):
    """The task199 case: as plain text it gets the 4 demos right, but on its own inputs
    its labels are coin flips that do not follow them; in chat form it says "positive"."""

    def _answer(self, prompt, chat):
        if asked_label(prompt, ("positive", "negative")):
            return super()._answer(prompt, chat)
        if chat:
            return "positive"
        last = prompt.rsplit("Input:", 1)[1]
        if any(d.input in last for d in TASK.demos):
            return truth(prompt)
        return random.Random(last).choice(["positive", "negative"])

