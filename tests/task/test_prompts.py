"""Exact prompt text for a small task (the prompt is shared by labelling, training, eval)."""

from __future__ import annotations

import random

from selfguide.methods.selfguide.prompts import input_generation_prompt, sample_generated
from selfguide.task.prompts import instruction_prompt, task_prompt
from selfguide.task.spec import Demo, TaskSpec

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


def test_input_generation_prompt_exact_by_label():
    # the default form: only inputs of the target label, earlier ones first, demos last
    assert input_generation_prompt(CLS, [("Great fun.", "positive")], "positive",
                                   form="by_label") == (
        "Classify the sentiment.\n"
        "Possible answers: positive, negative.\n\n"
        'Inputs whose answer is "positive":\n'
        "Input: Great fun.\n"
        "Input: I loved it.\n"
        "Input:")


def test_input_generation_prompt_by_label_without_demos_of_the_target():
    # a label the demos never show: the other labels' demos, each under its heading, first
    three = TaskSpec(name="t", instruction="Classify.", demos=CLS.demos,
                     task_type="classification", labels=("positive", "negative", "mixed"),
                     metric="exact_match")
    assert input_generation_prompt(three, [], "mixed", form="by_label") == (
        "Classify.\n"
        "Possible answers: positive, negative, mixed.\n\n"
        'Inputs whose answer is "positive":\nInput: I loved it.\n\n'
        'Inputs whose answer is "negative":\nInput: Awful.\n\n'
        'Inputs whose answer is "mixed":\nInput:')


def test_input_generation_prompt_by_label_matches_demo_answers_loosely():
    loose = TaskSpec(name="l", instruction="Classify.", demos=(Demo("Great.", " Positive"),),
                     task_type="classification", labels=("positive", "negative"),
                     metric="exact_match")
    assert input_generation_prompt(loose, [], "positive", form="by_label").endswith(
        'Inputs whose answer is "positive":\nInput: Great.\nInput:')


def test_input_generation_prompt_by_label_leaves_generation_tasks_alone():
    assert input_generation_prompt(GEN, ["How do birds fly?"], form="by_label") == \
        input_generation_prompt(GEN, ["How do birds fly?"])


def test_stage1_plan_shows_only_inputs_written_for_the_target():
    from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
    from selfguide.methods.selfguide.stages import _Pool, _round_plan

    pool = _Pool(CLS, FilterConfig())
    for i in range(12):
        pool.add(f"Sample input number {i} here.", "positive" if i % 2 else "negative")
    for form in ("by_label", "mixed"):
        cfg = SynthesisConfig(prompts_per_round=20, max_generated_examples=4,
                              input_prompt=form)
        plan = _round_plan(CLS, cfg, pool, 1)
        mixed = any(lab != target for _, target, shown in plan for _, lab in shown)
        assert all(shown for _, _, shown in plan)
        assert mixed == (form == "mixed")


def test_input_generation_prompt_exact_classification():
    # output-first: earlier (lower-quality) inputs, then the demos, then the target label
    assert input_generation_prompt(CLS, [("It was ok.", "negative")], "negative",
                                   form="mixed") == (
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
