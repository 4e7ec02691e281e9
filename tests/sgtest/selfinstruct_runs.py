"""Shared test helpers (moved from tests/app/test_filter_selfinstruct.py): make_si_run."""

from __future__ import annotations

import random

from selfguide.runs import store

WORDS = ["river", "mountain", "lantern", "violin", "pepper", "orbit", "marble", "tundra", "falcon", "copper", "harbor", "meadow", "saddle", "comet", "ginger", "walnut", "canyon", "velvet", "hammer", "lagoon"]


def fake_model(prompt, sampling, i):
    """Numbered new instructions, yes/no classification, input-first instances."""
    from selfguide.methods.selfinstruct.prompts import CLF_HEADER

    rng = random.Random(f"{prompt}|{sampling.seed}")
    if prompt.startswith("Come up with a series of tasks"):
        items = [f"Describe the {' '.join(rng.sample(WORDS, 5))} in detail." for _ in range(3)]
        items.append("Draw a picture of a cat for me.")  # blacklisted ("draw"? "picture")
        return " " + "\n".join(f"{9 + k}. {t}" if k else t for k, t in enumerate(items))
    if prompt.startswith(CLF_HEADER):
        return " No"
    w = rng.sample(WORDS, 3)
    return (f"Input: {w[0]}\nOutput: a short note on {w[0]} and {w[1]}\nExample 2\n"
            f"Input: {w[2]}\nOutput: {' '.join(rng.sample(WORDS, 8))}")


def make_si_run(ws):
    from selfguide.backends.fake import FakeGenerator
    from selfguide.methods.selfinstruct.config import SelfInstructConfig, SelfInstructFilterConfig
    from selfguide.methods.selfinstruct.pipeline import run_self_instruct
    from selfguide.methods.selfinstruct.prompts import load_seed_tasks

    d = store.resolve_run_dir("si", create=True)
    run_self_instruct(d, FakeGenerator(script=fake_model), load_seed_tasks(),
                      SelfInstructConfig(num_instructions=6, prompts_per_round=2,
                                         max_rounds=4),
                      SelfInstructFilterConfig(), stream=None)
    return d

