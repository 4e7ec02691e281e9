"""Exact prompt text for a small task (the prompt is shared by labelling, training, eval)."""

from __future__ import annotations

import random

from selfguide.methods.selfguide.prompts import input_generation_prompt, sample_generated
from selfguide.prompts import instruction_prompt, task_prompt
from selfguide.task import Demo, TaskSpec

CLS = TaskSpec(name="s", instruction="Classify the sentiment.  ",
               demos=(Demo("I loved it.", "positive"), Demo(" Awful. ", "negative")),
               task_type="classification", labels=("positive", "negative"),
               metric="exact_match")
GEN = TaskSpec(name="p", instruction="Paraphrase the question.",
               demos=(Demo("What is AI?", "What does AI mean?"),))


def test_task_prompt_classification_exact():
    assert task_prompt(CLS, "Meh, fine.") == (
        "Classify the sentiment.\n"
        "Answer with one of: positive, negative.\n\n"
        "Input: I loved it.\nOutput: positive\n\n"
        "Input: Awful.\nOutput: negative\n\n"
        "Input: Meh, fine.\nOutput:")


def test_task_prompt_generation_exact():
    assert task_prompt(GEN, "How do planes fly?") == (
        "Paraphrase the question.\n\n"
        "Input: What is AI?\nOutput: What does AI mean?\n\n"
        "Input: How do planes fly?\nOutput:")


def test_instruction_prompt_exact():
    assert instruction_prompt("Add the numbers.", "2 3") == "Add the numbers.\n\nInput: 2 3\nOutput:"
    assert instruction_prompt("Tell a joke.", "  ") == "Tell a joke.\nOutput:"


def test_input_generation_prompt_exact_classification():
    # output-first: earlier (lower-quality) inputs, then the demos, then the target label
    assert input_generation_prompt(CLS, [("It was ok.", "negative")], "negative") == (
        "Classify the sentiment.\n"
        "Possible answers: positive, negative.\n\n"
        "Answer: negative\nInput: It was ok.\n\n"
        "Answer: positive\nInput: I loved it.\n\n"
        "Answer: negative\nInput: Awful.\n\n"
        "Answer: negative\nInput:")


def test_input_generation_prompt_exact_generation():
    assert input_generation_prompt(GEN, ["How do birds fly?"]) == (
        "Paraphrase the question.\n\n"
        "Input: How do birds fly?\n\n"
        "Input: What is AI?\n\n"
        "Input:")
    assert input_generation_prompt(GEN) == (
        "Paraphrase the question.\n\nInput: What is AI?\n\nInput:")


def test_sample_generated_bounds_and_determinism():
    pool = [f"x{i}" for i in range(30)]
    for seed in range(20):
        s = sample_generated(pool, random.Random(seed), 1, 10)
        assert 1 <= len(s) <= 10 and len(set(s)) == len(s) and set(s) <= set(pool)
        assert s == sample_generated(pool, random.Random(seed), 1, 10)
    assert sample_generated([], random.Random(0), 1, 10) == []
    assert sample_generated(["a", "b"], random.Random(0), 3, 10) == ["a", "b"] or \
        sorted(sample_generated(["a", "b"], random.Random(0), 3, 10)) == ["a", "b"]
