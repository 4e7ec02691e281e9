"""Shared test helpers (moved from tests/methods/test_selfinstruct_pipeline.py): fake_script."""

from __future__ import annotations

import random

from selfguide.methods.selfinstruct.prompts import CLF_HEADER
from selfguide.settings.fields import SamplingConfig

WORDS = ("river mountain lantern violin pepper orbit marble tundra falcon copper harbor "
         "meadow saddle comet ginger walnut canyon velvet hammer lagoon thistle beacon "
         "quartz maple ember glacier parrot willow cobalt prairie").split()


VERBS = ("Describe", "Explain", "Summarize", "Compare", "List", "Invent", "Evaluate", "Rank")


def fake_script(prompt: str, sampling: SamplingConfig, i: int) -> str:
    """A deterministic stand-in model: its answers depend only on the prompt and seed."""
    rng = random.Random(f"{prompt}|{sampling.seed}")
    if prompt.startswith("Come up with a series of tasks"):
        items = []
        for _ in range(4):
            words = " ".join(rng.sample(WORDS, 5))
            if rng.random() < 0.3:
                items.append(f"Classify whether {words} is positive or negative.")
            else:
                items.append(f"{rng.choice(VERBS)} the {words} in detail.")
        items.append(items[0].replace(" in detail.", " in great detail."))  # near-dup
        items += ["Draw a picture of a cat for me.", "Say hi.",
                  "Make a short packing list for the trip described below."]
        # ragged continuation of "9.", then a list cut by the budget is not simulated here
        return " " + "\n".join(f"{9 + k}. {t}" if k else t for k, t in enumerate(items))
    if prompt.startswith(CLF_HEADER):
        last = prompt.rsplit("Task: ", 1)[1]
        return " Yes" if last.startswith("Classify") else " No"
    if prompt.endswith("Class label:"):
        return (" Positive\nInput: I loved every minute.\nClass label: Negative\n"
                "Input: It broke on day one.\nClass label: Positive\nInput: I loved every "
                "minute.")  # the third repeats the first: a duplicate to filter
    # input-first instances
    w = rng.sample(WORDS, 2)
    return (f"Input: {w[0]}\nOutput: a note on {w[0]}\nExample 2\nInput: {w[1]}\n"
            f"Output: {w[1]}\nExample 3\nInput: {w[0]}\nOutput: a note on {w[0]}")

