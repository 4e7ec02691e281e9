"""Self-Instruct seed pool, prompt text and parsers (pure functions)."""

from __future__ import annotations

import json
import random

import pytest

from selfguide.errors import TaskError
from selfguide.methods.selfinstruct.prompts import (
    SeedTask,
    classification_prompt,
    default_seed_path,
    input_first_prompt,
    instruction_prompt,
    load_seed_tasks,
    output_first_prompt,
    parse_input_first,
    parse_input_output,
    parse_instructions,
    parse_output_first,
    parse_seed_tasks,
    parse_yes_no,
    sample_prompt_instructions,
    select_clf_shots,
    select_instance_shots,
)

# --------------------------------------------------------------------------- seed pool

# Two lines in the exact layout of the paper's released seed_tasks.jsonl.
PAPER_STYLE = (
    '{"id": "seed_task_0", "name": "breakfast_suggestion", "instruction": "Is there anything '
    'I can eat for a breakfast that doesn\'t include eggs?", "instances": [{"input": "", '
    '"output": "Yes, you can have oatmeal."}], "is_classification": false}\n'
    '{"id": "seed_task_1", "name": "antonym_relation", "instruction": "What is the relation '
    'between the given pairs?", "instances": [{"input": "Night : Day :: Right : Left", '
    '"output": "The relation is antonyms."}], "is_classification": false}\n'
)


def test_shipped_seed_pool_is_valid_and_diverse():
    seeds = load_seed_tasks()
    assert len(seeds) >= 25
    n_clf = sum(s.is_classification for s in seeds)
    assert 0.25 <= n_clf / len(seeds) <= 0.45  # about a third classification
    assert len({s.id for s in seeds}) == len(seeds)
    assert len({s.instruction for s in seeds}) == len(seeds)
    for s in seeds:
        assert s.instances and all(o.strip() for _, o in s.instances)
    # Every line uses exactly the paper's schema keys.
    for line in default_seed_path().read_text(encoding="utf-8").splitlines():
        assert set(json.loads(line)) == {"id", "name", "instruction", "instances",
                                         "is_classification"}


def test_seed_pool_is_not_near_duplicate():
    from selfguide.evaluation.rouge import max_scores

    instr = [s.instruction for s in load_seed_tasks()]
    for i, (score, _) in enumerate(max_scores(instr[1:], instr[:1])):
        assert score < 0.7, instr[i + 1]
    for i in range(1, len(instr)):
        assert max_scores([instr[i]], instr[:i])[0][0] < 0.7


def test_paper_schema_loads_unchanged(tmp_path):
    p = tmp_path / "seed_tasks.jsonl"
    p.write_text(PAPER_STYLE, encoding="utf-8")
    seeds = load_seed_tasks(p)
    assert [s.id for s in seeds] == ["seed_task_0", "seed_task_1"]
    assert seeds[0].instances == (("", "Yes, you can have oatmeal."),)
    assert seeds[1].to_dict() == json.loads(PAPER_STYLE.splitlines()[1])


@pytest.mark.parametrize("text, fragment", [
    ("", "contains no seed tasks"),
    ("{\n", "line 1: not valid JSON"),
    (PAPER_STYLE + "[1, 2]\n", "line 3: expected a JSON object"),
    ('{"instances": [{"input": "", "output": "x"}]}\n', "line 1: 'instruction' is missing"),
    ('{"instruction": "Do it.", "instances": []}\n', "'instances' must be a non-empty list"),
    ('{"instruction": "Do it.", "instances": ["x"]}\n', "instances[0] is not an object"),
    ('{"instruction": "Do it.", "instances": [{"input": 1, "output": "x"}]}\n',
     "needs string 'input' and 'output'"),
    ('{"instruction": "Do it.", "instances": [{"input": "", "output": " "}]}\n',
     "empty 'output'"),
    ('{"instruction": "Do it.", "instances": [{"output": "x"}], "is_classification": "no"}\n',
     "'is_classification' must be true or false"),
    (PAPER_STYLE + "\n" + PAPER_STYLE.splitlines()[0] + "\n",
     "line 4: duplicate id 'seed_task_0' (first on line 1)"),
])
def test_bad_seed_files_name_the_line(text, fragment):
    with pytest.raises(TaskError) as exc:
        parse_seed_tasks(text.encode("utf-8"), "seeds.jsonl")
    assert fragment in str(exc.value)
    assert "seeds.jsonl" in str(exc.value)


def test_seed_file_encoding_and_missing(tmp_path):
    with pytest.raises(TaskError, match="not UTF-8"):
        parse_seed_tasks(b'{"instruction": "caf\xe9"}', "x.jsonl")
    assert parse_seed_tasks(b"\xef\xbb\xbf" + PAPER_STYLE.encode())[0].id == "seed_task_0"
    with pytest.raises(TaskError, match="not found"):
        load_seed_tasks(tmp_path / "nope.jsonl")
    with pytest.raises(TaskError, match="directory"):
        load_seed_tasks(tmp_path)


def test_missing_id_and_name_get_defaults():
    seeds = parse_seed_tasks('{"instruction": "Say hi.", "instances": [{"output": "hi"}]}\n')
    assert seeds[0].id == "seed_task_0" and seeds[0].name == "seed_task_0"
    assert seeds[0].is_classification is False


# --------------------------------------------------------------------------- instruction prompt

def test_sampling_composition_is_seeded():
    seed = [f"Seed task number {i}." for i in range(10)]
    machine = [f"Machine task {i}." for i in range(5)]
    picked = sample_prompt_instructions(seed, machine, total=8, machine=2,
                                        rng=random.Random(42))
    assert len(picked) == 8 == len(set(picked))
    assert sum(p in machine for p in picked) == 2 and sum(p in seed for p in picked) == 6
    assert picked == sample_prompt_instructions(seed, machine, total=8, machine=2,
                                                rng=random.Random(42))
    others = {tuple(sample_prompt_instructions(seed, machine, total=8, machine=2,
                                               rng=random.Random(k))) for k in range(5)}
    assert len(others) > 1  # shuffled differently per seed


def test_instruction_prompt_exact_text_for_fixed_sample():
    picked = ["Seed task number 3.", "Machine   task\nbeta.", "Seed task number 5.",
              "Machine task alpha:", "Seed task number 6.", "Seed task number 2.",
              "Seed task number 7.", "Seed task number 1."]
    assert instruction_prompt(picked) == (
        "Come up with a series of tasks:\n"
        "1. Seed task number 3.\n"
        "2. Machine task beta.\n"
        "3. Seed task number 5.\n"
        "4. Machine task alpha\n"
        "5. Seed task number 6.\n"
        "6. Seed task number 2.\n"
        "7. Seed task number 7.\n"
        "8. Seed task number 1.\n"
        "9."
    )


def test_sampling_with_small_pools():
    rng = random.Random(0)
    assert len(sample_prompt_instructions(["a", "b", "c"], [], total=8, machine=2,
                                          rng=rng)) == 3
    got = sample_prompt_instructions(["s"] * 0 + [f"s{i}" for i in range(10)], ["m1"],
                                     total=8, machine=2, rng=rng)
    assert "m1" in got and len(got) == 8


# --------------------------------------------------------------------------- instruction parsing

@pytest.mark.parametrize("raw, truncated, want", [
    # plain continuation after "9."
    (" Write a haiku about rain.\n10. Translate the sentence into French.\n11. Name a color.",
     False, ["Write a haiku about rain.", "Translate the sentence into French.",
             "Name a color."]),
    # ragged: extra spaces, ")" numbering, multi-line item, blank lines between items
    ("  summarize the article\n in two sentences.\n\n10 ) Find the verb.\n\n  11.  List fruits.",
     False, ["Summarize the article in two sentences.", "Find the verb.", "List fruits."]),
    # truncated by the token budget: the last item is dropped
    (" Write a haiku about rain.\n10. Translate the sentence into Fren", True,
     ["Write a haiku about rain."]),
    # chat answer restating the number, with a preamble and trailing chatter
    ("Sure! Here are more tasks:\n9. Explain gravity to a child.\n10. Task: Sort the numbers."
     "\n\nI hope these help!", False, ["Explain gravity to a child.", "Sort the numbers."]),
    # markdown bold numbers and quotes
    ('**9.** "Give a synonym for happy."\n**10.** Rate the joke.', False,
     ["Give a synonym for happy.", "Rate the joke."]),
    ("", False, []),
    ("   \n  ", False, []),
    ("\n10.\n11. Only this one.", False, ["Only this one."]),
    (" Just one item, cut", True, []),
    # a nested list (the model's own example input) stays inside its item
    (" Create a list of ten items.\n10. Write a story based on these events:\n1. The first "
     "day.\n2. The last day.\n11. Name a color.", False,
     ["Create a list of ten items.",
      "Write a story based on these events: 1. The first day. 2. The last day.",
      "Name a color."]),
    # a chat answer restarting at 1 sets its own sequence
    ("1. Write a limerick.\n2. Spell the word backwards.", False,
     ["Write a limerick.", "Spell the word backwards."]),
])
def test_parse_instructions(raw, truncated, want):
    assert parse_instructions(raw, start=9, truncated=truncated) == want


def test_parse_instructions_without_start_follows_first_number():
    assert parse_instructions(" Open item.\n4. Four.\n5. Five.\n5. Again five.") == [
        "Open item.", "Four.", "Five. 5. Again five."]
    # a skipped number still starts a new item
    assert parse_instructions(" A.\n10. B.\n12. C.", start=9) == ["A.", "B.", "C."]


# --------------------------------------------------------------------------- classification

def _seeds() -> list[SeedTask]:
    return [
        SeedTask("a", "a", "Is the review positive or negative?", (("Great!", "Positive"),
                                                                   ("Awful.", "Negative")), True),
        SeedTask("b", "b", "Write a poem about the sea.", (("", "Waves roll in."),), False),
        SeedTask("c", "c", "Translate to French.", (("Hello", "Bonjour"),), False),
        SeedTask("d", "d", "Is the number even?", (("4", "Yes"),), True),
    ]


def test_classification_prompt_exact():
    shots = select_clf_shots(_seeds(), 3)
    assert shots == [("Is the review positive or negative?", True),
                     ("Write a poem about the sea.", False), ("Is the number even?", True)]
    assert classification_prompt("Tell whether the email is spam.", shots) == (
        "Can the following task be regarded as a classification task with finite output "
        "labels?\n\n"
        "Task: Is the review positive or negative?\nIs it classification? Yes\n\n"
        "Task: Write a poem about the sea.\nIs it classification? No\n\n"
        "Task: Is the number even?\nIs it classification? Yes\n\n"
        "Task: Tell whether the email is spam.\nIs it classification?"
    )


@pytest.mark.parametrize("raw, want", [
    (" Yes", True), ("yes, it is", True), ("YES.", True), (" No", False), ("no\nTask:", False),
    ("  *No*", False), ("Maybe", None), ("", None), ("Nope", None), ("Yesterday", None),
])
def test_parse_yes_no(raw, want):
    assert parse_yes_no(raw) is want


# --------------------------------------------------------------------------- instances

def test_input_first_prompt_exact():
    shots = select_instance_shots(_seeds(), 2, classification=False)
    assert input_first_prompt("Give the capital of the country.", shots) == (
        "Come up with examples for the following tasks. Try to generate multiple examples "
        "when possible. If the task doesn't require additional input, you can generate the "
        "output directly.\n\n"
        "Task: Write a poem about the sea.\nExample 1\nOutput: Waves roll in.\n\n"
        "Task: Translate to French.\nExample 1\nInput: Hello\nOutput: Bonjour\n\n"
        "Task: Give the capital of the country.\nExample 1\n"
    )


def test_output_first_prompt_exact():
    shots = select_instance_shots(_seeds(), 1, classification=True)
    assert output_first_prompt("Is the sentence sarcastic?", shots) == (
        "Given the classification task definition and the class labels, generate an input "
        "that corresponds to each of the class labels. If the task doesn't require input, "
        "just generate possible class labels.\n\n"
        "Task: Is the review positive or negative?\n"
        "Class label: Positive\nInput: Great!\nClass label: Negative\nInput: Awful.\n\n"
        "Task: Is the sentence sarcastic?\nClass label:"
    )


@pytest.mark.parametrize("raw, truncated, want", [
    ("Input: France\nOutput: Paris\nExample 2\nInput: Japan\nOutput: Tokyo\n", False,
     [("France", "Paris"), ("Japan", "Tokyo")]),
    # no input needed
    ("Output: The sky is blue.", False, [("", "The sky is blue.")]),
    # output without the marker: the whole text is the output
    ("Paris is the capital.", False, [("", "Paris is the capital.")]),
    # ragged numbering "Example 2:" and extra blank lines; stops at the next Task:
    ("Input: Peru\nOutput: Lima\n\nExample 2:\nInput: Chad\nOutput: N'Djamena\n\nTask: Other "
     "task\nExample 1\nOutput: x", False, [("Peru", "Lima"), ("Chad", "N'Djamena")]),
    # a second Input: inside an output starts another example, the rest is ignored
    ("Input: Kenya\nOutput: Nairobi\nInput: Cuba", False, [("Kenya", "Nairobi")]),
    # truncated: the last, cut-off instance is dropped
    ("Input: Peru\nOutput: Lima\nExample 2\nInput: Ch", True, [("Peru", "Lima")]),
    ("", False, []),
    # "Example" inside text is not a separator
    ("Input: Example sentences help.\nOutput: yes", False,
     [("Example sentences help.", "yes")]),
])
def test_parse_input_first(raw, truncated, want):
    assert parse_input_first(raw, truncated=truncated) == want


def test_parse_input_output_markers():
    assert parse_input_output("Input 1: a\nOutput 1: b") == ("a", "b")
    assert parse_input_output("Input: a") == ("", "")  # input only: empty output (filtered)


@pytest.mark.parametrize("raw, truncated, want", [
    (" Sarcastic\nInput: Oh great, another Monday.\nClass label: Not sarcastic\n"
     "Input: I like Mondays.", False,
     [("Oh great, another Monday.", "Sarcastic"), ("I like Mondays.", "Not sarcastic")]),
    # label only (task without input)
    (" Yes\nClass label: No", False, [("", "Yes"), ("", "No")]),
    # input spanning lines, stops at the next Task:
    (" Spam\nInput: WIN a prize\nnow!!!\n\nTask: Next\nClass label: x", False,
     [("WIN a prize\nnow!!!", "Spam")]),
    # truncated: last block dropped
    (" Positive\nInput: Loved it.\nClass label: Nega", True, [("Loved it.", "Positive")]),
    ("", False, []),
    (" \n", False, []),
])
def test_parse_output_first(raw, truncated, want):
    assert parse_output_first(raw, truncated=truncated) == want


# --------------------------------------------------------------------------- properties

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PIECES = list("ab 1.:)\n*\"-é") + ["Input:", "Output:", "Example 2", "Class label:",
                                    "Task:", "10.", "\n\n"]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)


@given(_TEXT, st.booleans())
def test_parsers_never_raise_and_return_clean_strings(raw, truncated):
    for item in parse_instructions(raw, start=9, truncated=truncated):
        assert item and item == item.strip() and "\n" not in item
    for parse in (parse_input_first, parse_output_first):
        for inp, out in parse(raw, truncated=truncated):
            assert isinstance(inp, str) and isinstance(out, str)
            assert inp == inp.strip() and out == out.strip()


@given(st.binary(max_size=200))
def test_seed_parser_raises_only_task_error(data):
    try:
        parse_seed_tasks(data, "fuzz.jsonl")
    except TaskError:
        pass
