"""Parsing raw completions and mapping answers onto the label set."""

from __future__ import annotations

import pytest

from selfguide.task.parsing import map_label, parse_input, parse_output


@pytest.mark.parametrize("raw, expected", [
    ("What is the capital of France?", "What is the capital of France?"),
    ("  Input: How do magnets work?  ", "How do magnets work?"),
    ("[input] How do magnets work?", "How do magnets work?"),
    ("New input: \"Why is the sky blue?\"", "Why is the sky blue?"),
    ("“Why is the sky blue?”", "Why is the sky blue?"),
    ("Premise: A. \n Hypothesis: B.\nOutput: entails", "Premise: A. \n Hypothesis: B."),
    ("Why is grass green?\n\nThis question asks about plants.", "Why is grass green?"),
    ("Why is grass green?\nExplanation: simple", "Why is grass green?"),
    ("Why is grass green?\nInput: another one", "Why is grass green?"),
    ("Why is grass green?\nI hope this helps!", "Why is grass green?"),
    ("", ""),
    ("Input:", ""),
    ('"', '"'),
    ("Sure, here is a new input: Why?", "Sure, here is a new input: Why?"),  # noise filter's job
])
def test_parse_input(raw, expected):
    assert parse_input(raw) == expected


@pytest.mark.parametrize("raw, single, expected", [
    (" entails", True, "entails"),
    ("Output: neutral\nInput: x", True, "neutral"),
    ("Answer: 'yes'", True, "yes"),
    ("positive\nbecause it is nice", True, "positive"),
    ("What does AI stand for?\n\nInput: next", False, "What does AI stand for?"),
    ("", False, ""),
])
def test_parse_output(raw, single, expected):
    assert parse_output(raw, single_line=single) == expected


LABELS = ("Entailment", "Neutral", "Contradiction")


@pytest.mark.parametrize("answer, expected", [
    ("Entailment.", "Entailment"),
    ("entailment", "Entailment"),
    ("  NEUTRAL ", "Neutral"),
    ('"Contradiction"', "Contradiction"),
    ("The answer is entailment", "Entailment"),        # containment, one label
    ("I think it is neutral.", "Neutral"),
    ("entailment or neutral", None),                   # several labels
    ("maybe", None),                                   # no label
    ("", None),
    ("entailments", None),                             # whole words only
])
def test_map_label(answer, expected):
    assert map_label(answer, LABELS) == expected


def test_map_label_nested_labels():
    labels = ("entails", "not entails")
    assert map_label("not entails", labels) == "not entails"
    assert map_label("It does not entails.", labels) == "not entails"
    assert map_label("entails", labels) == "entails"
