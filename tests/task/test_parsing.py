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


# Issue 40: the stage-1 prompts' scaffolding never survives into an input, one case per
# marker (selfguide/methods/*/prompts.py: "Input:", "Answer: <label>", "Possible answers:",
# 'Inputs whose answer is "<label>":' and the model's variants of it).
@pytest.mark.parametrize("raw, expected", [
    # a label lead-in at the end of the input, on the same line (the 11 of 88 rows)
    ('The plot drags on. Outputs whose answer is "negative":', "The plot drags on."),
    ('The plot drags on. Inputs whose answer is "negative":', "The plot drags on."),
    ('The plot drags on.\nInputs whose answer is "positive":\nInput: Loved it',
     "The plot drags on."),
    ("The plot drags on. Examples whose label is negative", "The plot drags on."),
    # a lead-in line before the input
    ('Inputs whose answer is "negative":\nInput: A dull film.', "A dull film."),
    ('Outputs whose answer is "negative":\nA dull film.', "A dull film."),
    # the label list
    ("A dull film. Possible answers: positive, negative.", "A dull film."),
    ("Possible answers: positive, negative.\nInput: A dull film.", "A dull film."),
    # the output-first layout's answer line
    ("Answer: negative\nInput: A dull film.", "A dull film."),
    ("A dull film.\nAnswer: negative", "A dull film."),
    # Input:/Output: lines and a dangling marker
    ("A dull film.\nOutput: negative", "A dull film."),
    ("Input: A dull film.\nInput: Another one.", "A dull film."),
    ("A dull film. Input:", "A dull film."),
    ("A dull film.\nOutput:", "A dull film."),
    # only scaffolding: nothing is left (the noise filter drops the empty input)
    ('Inputs whose answer is "negative":', ""),
    # ordinary text that merely mentions answers is kept
    ("What is the answer to life?", "What is the answer to life?"),
    ("Answer: the sky is blue", "the sky is blue"),
])
def test_parse_input_cuts_prompt_scaffolding(raw, expected):
    assert parse_input(raw) == expected
