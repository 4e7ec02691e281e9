"""A SELF-GUIDE synthesis job with a slow scripted backend (run as ``python -m synthworker``).

Test support for the kill -9 / resume test: it runs the real
:func:`selfguide.methods.selfguide.pipeline.run_synthesis` inside the real :func:`selfguide.jobs.worker`,
with a :class:`~selfguide.backends.fake.FakeGenerator` whose answers depend only on the prompt,
the seed and the sample index (so an interrupted and an uninterrupted run must agree), and
which sleeps per call so a test can kill it mid-stage. Not a test itself.

Usage: ``python -m synthworker RUN_DIR DELAY_S``.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from selfguide import jobs
from selfguide.backends.fake import FakeGenerator
from selfguide.methods.selfguide import pipeline as P
from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
from selfguide.task.spec import Demo, TaskSpec

TASK = TaskSpec(name="sent", instruction="Is the review positive or negative?",
                demos=(Demo("I loved this film so much, great acting", "positive"),
                       Demo("Boring plot and terrible dialogue throughout", "negative"),
                       Demo("What a delightful and charming little movie", "positive")),
                task_type="classification", labels=("positive", "negative"),
                metric="exact_match")
# probe_inputs=4 (< the 20 inputs): the protocol probe labels a few, the batches the rest, so
# stage 2 has several kill points (the default 24 would label all 20 in one step).
CFG = SynthesisConfig(rounds=4, prompts_per_round=5, n_samples=3, annotate_batch=4,
                      probe_inputs=4)
WORDS = {"positive": ["great", "lovely", "superb", "fun", "charming", "moving", "bright"],
         "negative": ["dull", "awful", "boring", "weak", "slow", "messy", "bland"]}
NOUNS = ["film", "plot", "cast", "score", "ending", "script", "camera", "story", "pacing"]


def script(prompt: str, sampling, i: int) -> str:
    """Depends only on (prompt, seed, i). Stage 1 is told apart by its sampling temperature
    (a config value), not by prompt wording, which the prompt module may change."""
    if sampling.temperature == CFG.input_temperature != CFG.output_temperature:
        target = max(("positive", "negative"), key=prompt.rfind)  # the label asked for last
        r = random.Random(f"{prompt}|{sampling.seed}")
        body = " ".join(f"{r.choice(WORDS[target])} {r.choice(NOUNS)}" for _ in range(3))
        return f"Input: The {body}.\nOutput: {target}"
    last = prompt.rsplit("Input:", 1)[1]
    pos = sum(w in last for w in WORDS["positive"])
    neg = sum(w in last for w in WORDS["negative"])
    lab = "positive" if pos >= neg else "negative"
    return [lab, f"{lab.capitalize()}.", "unsure"][i % 3]


class Slow(FakeGenerator):
    delay: float = 0.0

    def generate(self, *a, **kw):
        time.sleep(self.delay)
        return super().generate(*a, **kw)


def main(argv: list[str]) -> int:
    run_dir, delay = Path(argv[0]), float(argv[1])
    gen = Slow(script=script)
    gen.delay = delay
    with jobs.worker(run_dir, "synthesize") as events:
        P.run_synthesis(run_dir, TASK, CFG, FilterConfig(), generator=gen, events=events,
                        stream=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
