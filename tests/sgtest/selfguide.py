"""Shared test helpers (moved from tests/methods/test_selfguide_pipeline.py): TASK, _run, script, asked_label."""

from __future__ import annotations

import random

from selfguide.methods.selfguide import pipeline as P
from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
from selfguide.task.spec import Demo, TaskSpec

TASK = TaskSpec(name="sent", instruction="Is the review positive or negative?",
                demos=(Demo("I loved this film so much, great acting", "positive"),
                       Demo("Boring plot and terrible dialogue throughout", "negative"),
                       Demo("What a delightful and charming little movie", "positive")),
                task_type="classification", labels=("positive", "negative"),
                metric="exact_match")


WORDS = {"positive": ["great", "lovely", "superb", "fun", "charming", "moving", "bright"],
         "negative": ["dull", "awful", "boring", "weak", "slow", "messy", "bland"]}


NOUNS = ["film", "plot", "cast", "score", "ending", "script", "camera", "story", "pacing"]


def asked_label(prompt: str, labels) -> str:
    """The label a stage-1 prompt asks an input for ("" for any other prompt), in either
    ``input_prompt`` form."""
    if prompt.endswith(tuple(f"Answer: {lab}\nInput:" for lab in labels)):  # mixed
        return prompt.rsplit("Answer: ", 1)[1].split("\n")[0]
    if prompt.endswith("\nInput:") and 'Inputs whose answer is "' in prompt:  # by_label
        return prompt.rsplit('Inputs whose answer is "', 1)[1].split('"')[0]
    return ""


def script(prompt: str, sampling, i: int) -> str:
    """Inputs follow the asked-for label; answers read the input's words (noisy)."""
    target = asked_label(prompt, ("negative", "positive"))
    if target:
        r = random.Random(f"{prompt}|{sampling.seed}")
        body = " ".join(f"{r.choice(WORDS[target])} {r.choice(NOUNS)}" for _ in range(3))
        return f"Input: The {body}.\nOutput: {target}"
    last = prompt.rsplit("Input:", 1)[1]
    pos = sum(w in last for w in WORDS["positive"])
    neg = sum(w in last for w in WORDS["negative"])
    lab = "positive" if pos >= neg else "negative"
    return [f"{lab.capitalize()}.", lab, f"The answer is {lab}", "unsure"][i % 4]


SMALL = SynthesisConfig(rounds=4, prompts_per_round=6, n_samples=4, annotate_batch=5,
                        probe_inputs=5)


def _run(run_dir, gen, cfg=SMALL, filters=None, **kw):
    P.prepare_run(run_dir, TASK, cfg, filters or FilterConfig())
    return P.synthesize(run_dir, TASK, cfg, gen, stream=None, **kw)


def reviews(n: int, seed: int = 0) -> list[str]:
    r = random.Random(seed)
    out = []
    for i in range(n):
        lab = r.choice(["positive", "negative"])
        out.append(f"Review {i}: the {r.choice(NOUNS)} was {r.choice(WORDS[lab])} and "
                   f"{r.choice(WORDS[lab])}, {r.choice(NOUNS)} {i}")
    return out
