"""Each Self-Instruct filter as a table of cases, plus configuration validation."""

from __future__ import annotations

import pytest

from selfguide.errors import ConfigError
from selfguide.methods.selfinstruct.config import (
    DEFAULT_BLACKLIST,
    SelfInstructConfig,
    SelfInstructFilterConfig,
)
from selfguide.methods.selfinstruct.filters import (
    blacklisted_word,
    first_failure,
    instance_checks,
    instruction_checks,
    keep_blacklist,
    keep_complete,
    keep_consistent,
    keep_input_length,
    keep_length,
    keep_not_copy,
    keep_output_length,
    keep_output_nonempty,
    keep_prefix,
    keep_rouge,
    keep_start,
    keep_unique,
)
from selfguide.settings.fields import replace

CFG = SelfInstructFilterConfig()


@pytest.mark.parametrize("text, keep", [
    ("Name a color.", True),                       # 3 words: the lower bound is inclusive
    ("Name colors", False),                        # 2 words
    ("", False),
    (" ".join(["word"] * 150), True),
    (" ".join(["word"] * 151), False),
    ("Write   a\n poem", True),                    # whitespace-separated words
])
def test_length(text, keep):
    assert keep_length(text, CFG) is keep


@pytest.mark.parametrize("text, keep", [
    ("Write a poem.", True), ("3 reasons to exercise", True), ("- Write a poem.", False),
    ('"Write a poem."', False), ("**Bold task**", False), ("¿Qué hora es?", False),
    ("Écris un poème.", False), ("日本語で答えて", False), ("", False), ("  Write it.", True),
])
def test_start(text, keep):
    assert keep_start(text, CFG) is keep


@pytest.mark.parametrize("text, hit", [
    ("Describe the image below.", "image"),
    ("Look at these IMAGES and answer.", "IMAGES"),
    ("Draw a cat.", "Draw"),
    ("Plot the function.", "Plot"),
    ("Go to the store and buy milk.", "Go to"),
    ("Summarize the video transcript.", "video"),
    ("Create a flowchart of the process.", "flowchart"),
    ("Write a story about a mapmaker.", None),     # whole words only: 'mapmaker' is fine
    ("Explain the plotline of Hamlet.", None),
    ("Profile the user from their bio.", None),    # 'file' inside a word
    ("Tell me a joke.", None),
])
def test_blacklist(text, hit):
    assert blacklisted_word(text, CFG) == hit
    assert keep_blacklist(text, CFG) is (hit is None)


def test_blacklist_is_editable():
    cfg = replace(CFG, blacklist=("joke", "poem"))
    assert not keep_blacklist("Tell me a joke.", cfg)
    assert keep_blacklist("Describe the image.", cfg)
    assert keep_blacklist("Anything at all.", replace(CFG, blacklist=()))
    assert DEFAULT_BLACKLIST[-1] == "diagram" and "go to" in DEFAULT_BLACKLIST


@pytest.mark.parametrize("text, keep", [
    ("Write a program that sorts a list.", False), ("write a PROGRAM to add numbers", False),
    ("Write a poem about programs.", True), ("Explain how to write a program.", True),
])
def test_prefix(text, keep):
    assert keep_prefix(text, CFG) is keep


@pytest.mark.parametrize("score, keep", [(0.0, True), (0.69999, True), (0.7, False),
                                         (0.95, False), (1.0, False)])
def test_rouge(score, keep):
    assert keep_rouge(score, CFG) is keep
    assert keep_rouge(score, replace(CFG, rouge_threshold=0.96)) is (score < 0.96)


def test_instruction_checks_order_and_first_failure():
    checks = instruction_checks("- Draw", 0.9, CFG)
    assert list(checks) == ["length", "start", "blacklist", "prefix", "rouge"]
    assert checks == {"length": False, "start": False, "blacklist": False, "prefix": True,
                      "rouge": False}
    assert first_failure(checks) == "length"
    assert first_failure(instruction_checks("Write a haiku about rain.", 0.2, CFG)) == ""
    assert first_failure(instruction_checks("Write a haiku about rain.", 0.8, CFG)) == "rouge"


# --------------------------------------------------------------------------- instances

@pytest.mark.parametrize("fn, instances, want", [
    (keep_output_nonempty, [("a", "b"), ("a", ""), ("", "  \n"), ("", "x")],
     [True, False, False, True]),
    (keep_not_copy, [("hello", "hello"), ("hello", " hello "), ("hi", "hello"), ("", "x")],
     [False, False, True, True]),
    (keep_complete, [("Sentence:", "x"), ("x", "Answer: "), ("a: b", "c"), ("", "ok")],
     [False, False, True, True]),
    (keep_unique, [("a", "b"), ("a", "b"), ("a", "c"), (" a", "b "), ("", "b")],
     [True, False, True, False, True]),
])
def test_instance_filters(fn, instances, want):
    assert fn(instances) == want


@pytest.mark.parametrize("instances, scope, want", [
    ([("q", "yes"), ("q", "no"), ("r", "yes")], "input", [False, False, True]),
    ([("q", "yes"), ("q", "no"), ("r", "yes")], "task", [False, False, False]),
    ([("q", "yes"), ("q", "yes"), ("r", "no")], "task", [True, True, True]),   # same output
    ([("", "yes"), ("", "no")], "task", [True, True]),                         # empty inputs
    ([], "task", []),
])
def test_consistent(instances, scope, want):
    assert keep_consistent(instances, replace(CFG, conflict_scope=scope)) == want


def test_length_limits():
    cfg = replace(CFG, max_input_words=3, max_output_words=2)
    inst = [("one two three", "a b"), ("one two three four", "a"), ("x", "a b c")]
    assert keep_input_length(inst, cfg) == [True, False, True]
    assert keep_output_length(inst, cfg) == [True, True, False]


def test_instance_checks_rows():
    rows = instance_checks([("in", "out"), ("in", "in"), ("in", "out")], CFG)
    assert [list(r) for r in rows][0] == ["instances", "output_nonempty", "not_copy",
                                          "complete", "input_length", "output_length",
                                          "unique", "consistent"]
    # ("in","in") conflicts with ("in","out"): task scope drops all three
    assert [first_failure(r) for r in rows] == ["consistent", "not_copy", "unique"]


# --------------------------------------------------------------------------- configs

@pytest.mark.parametrize("cls, kwargs, field_name", [
    (SelfInstructFilterConfig, {"rouge_threshold": 0.0}, "rouge_threshold"),
    (SelfInstructFilterConfig, {"rouge_threshold": 1.5}, "rouge_threshold"),
    (SelfInstructFilterConfig, {"min_instruction_words": 10, "max_instruction_words": 5},
     "max_instruction_words"),
    (SelfInstructFilterConfig, {"conflict_scope": "all"}, "conflict_scope"),
    (SelfInstructFilterConfig, {"max_output_words": 0}, "max_output_words"),
    (SelfInstructConfig, {"machine_in_prompt": 9}, "machine_in_prompt"),
    (SelfInstructConfig, {"num_instructions": 0}, "num_instructions"),
    (SelfInstructConfig, {"instruction_top_p": 0.0}, "instruction_top_p"),
    (SelfInstructConfig, {"classify_with": "magic"}, "classify_with"),
    (SelfInstructConfig, {"instance_max_tokens": 2}, "instance_max_tokens"),
])
def test_config_validation(cls, kwargs, field_name):
    with pytest.raises(ConfigError, match=field_name):
        cls(**kwargs)


def test_config_defaults_follow_the_paper():
    c = SelfInstructConfig()
    assert (c.prompt_instructions, c.machine_in_prompt) == (8, 2)
    assert (c.instruction_temperature, c.instruction_top_p) == (0.7, 0.5)
    f = SelfInstructFilterConfig(blacklist=(" image ", "", "plot"))
    assert f.blacklist == ("image", "plot")
    assert CFG.rouge_threshold == 0.7
