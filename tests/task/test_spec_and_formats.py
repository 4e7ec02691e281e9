"""Task specs and loaders: own JSON/YAML, NIv2, CSV/JSONL, and every bad input from
RELIABILITY.md "Bad inputs" 1-4 (each a TaskError naming the field/line/byte offset)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfguide.errors import TaskError
from selfguide.task.formats import infer_labels, load_task, parse_task_bytes
from selfguide.task.spec import Demo, TaskSpec, TestExample, example_tasks, validate_task

GOOD = {
    "name": "sent", "instruction": "Classify the sentiment.", "task_type": "classification",
    "labels": ["positive", "negative"],
    "examples": [{"input": "I loved it.", "output": "positive"},
                 {"input": "Awful.", "output": "negative"}],
    "test": [{"input": "Great!", "output": "positive"}],
}


def _bytes(obj) -> bytes:
    return json.dumps(obj).encode()


def _with(**changes):
    d = json.loads(json.dumps(GOOD))
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def test_own_json_roundtrip():
    t = parse_task_bytes(_bytes(GOOD), "sent.json")
    assert t.is_classification and t.labels == ("positive", "negative")
    assert t.demos[0] == Demo("I loved it.", "positive")
    assert t.test[0] == TestExample("Great!", ("positive",), "")
    assert t.metric == "exact_match"
    again = TaskSpec.from_dict(t.to_dict())
    assert again == t and again.test == t.test
    json.dumps(t.to_dict())  # JSON-able


def test_yaml_and_generation_defaults():
    text = ("instruction: Paraphrase the question.\n"
            "examples:\n  - input: What is AI?\n    output: What does AI mean?\n")
    t = parse_task_bytes(text.encode(), "para.yaml")
    assert t.task_type == "generation" and t.metric == "rouge_l" and t.name == "para"
    assert t.labels == ()


def test_label_normalization_is_the_answer_normalization():
    """Issue 14 item 7: one function (parsing.normalize_label) for labels and answers."""
    t = parse_task_bytes(_bytes(_with(examples=[{"input": "a", "output": "POSITIVE"},
                                                {"input": "b", "output": " negative "}])),
                         "t.json")
    assert [d.output for d in t.demos] == ["positive", "negative"]
    wide = "ＮＥＧＡＴＩＶＥ"  # fullwidth: NFKC makes it "NEGATIVE"
    t = parse_task_bytes(_bytes(_with(examples=[{"input": "a", "output": "positive."},
                                                {"input": "b", "output": wide}])), "t.json")
    assert [d.output for d in t.demos] == ["positive", "negative"]


@pytest.mark.parametrize("labels, match", [
    (["positive", "positive."], r"Label 2 'positive\.' duplicates label 1 "
                                r"'positive': both are 'positive' after normalisation"),
    (["positive", "Positive!"], r"'Positive!' duplicates label 1 'positive'"),
    (["positive", "ｐｏｓｉｔｉｖｅ"], r"after normalisation"),
    (["positive", "positive\u200b"], r"invisible format character \(U\+200B"),
    (["posi\ntive", "negative"], r"control character \(U\+000A"),
    (["positive", "..."], r"only punctuation"),
])
def test_labels_that_collide_or_hide_characters_are_refused(labels, match):
    d = _with(labels=labels, examples=[{"input": "a", "output": "negative"}])
    with pytest.raises(TaskError, match=match):
        parse_task_bytes(_bytes(d), "t.json")


def test_answers_match_labels_through_the_same_function():
    from selfguide.task.parsing import map_label, normalize_label

    assert normalize_label("  «Positive.» ") == "positive"
    t = parse_task_bytes(_bytes(_with(labels=["positive.", "negative"],
                                      examples=[{"input": "a", "output": "positive"}])),
                         "t.json")
    # a label written with a full stop can win a vote: answers are normalised the same way
    assert map_label("Positive", t.labels) == "positive."
    assert map_label("positive.", t.labels) == "positive."
    assert map_label("ＰＯＳＩＴＩＶＥ", t.labels) == "positive."


@pytest.mark.parametrize("data, match", [
    # 1. malformed JSON
    (b"{", r"line 1, column 2"),
    (b'{"instruction": "x",\n "examples": [],\n}', r"line 3"),
    (_bytes(_with(examples="abc")), r"'examples' must be a list"),
    (_bytes(_with(examples=[{"input": 1, "output": "positive"}])),
     r"Demonstration 1: the input must be a string"),
    (_bytes(_with(instruction=None)), r"instruction is missing"),
    (_bytes(_with(colour="red")), r"Unknown key\(s\) in the task: colour"),
    (b'{"instruction": "a", "instruction": "b", "examples": []}', r"duplicate key 'instruction'"),
    (b'{"instruction": "a", "examples": [{"input": NaN, "output": "x"}]}', r"NaN"),
    (b'{"instruction": "a", "examples": [{"input": Infinity, "output": "x"}]}', r"Infinity"),
    (b"[" * 10000 + b"]" * 10000, r"must be a JSON/YAML object|nested too deeply"),
    (_bytes(_with(instruction="x" * 10_000_000)), r"instruction is 10,000,000 characters"),
    ((b'{"input": "a", "output": "b", "instruction": "i"}\n{"input": "c", "out\n'
      b'{"input": "d", "output": "e"}\n'), r"line 2"),
    # 2. empty examples
    (_bytes(_with(examples=[])), r"at least 1 demonstration"),
    (_bytes(_with(examples=[{"input": "", "output": "positive"}])), r"Demonstration 1: the input is empty"),
    (_bytes(_with(examples=[{"input": "   ", "output": "positive"}])), r"Demonstration 1: the input is empty"),
    (_bytes(_with(examples=[{"input": "\u200b\u200b", "output": "positive"}])),
     r"Demonstration 1: the input is empty"),
    (_bytes(_with(examples=[{"input": "ok", "output": "\t"}])), r"Demonstration 1: the output is empty"),
    (_bytes(_with(labels=[])), r"at least 2 labels, got 0"),
    (_bytes(_with(labels=["positive"], examples=[{"input": "a", "output": "positive"}])),
     r"at least 2 labels, got 1"),
    # 3. labels not in the set
    (_bytes(_with(examples=[{"input": "a", "output": "meh"}])), r"Demonstration 1: the output 'meh'"),
    (_bytes(_with(labels=["positive", "Positive ", "negative"])),
     r"Label 2 'Positive ' duplicates label 1"),
    (_bytes(_with(test=[{"input": "x", "output": "neutral"}])), r"Held-out example 1: the output 'neutral'"),
    # 4. not UTF-8
    (b'{"instruction": "caf\xe9"}', r"invalid byte 0xe9 at byte offset 20"),
    ('{"instruction": "x"}'.encode("utf-16"), r"UTF-16"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", r"NUL byte at byte offset 8"),
    (b'{"instruction": "\xc3', r"invalid byte 0xc3 at byte offset 17"),
])
def test_bad_inputs_raise_task_error(data, match):
    name = "t.jsonl" if b"\n{" in data and b"out\n" in data else "t.json"
    with pytest.raises(TaskError, match=match):
        parse_task_bytes(data, name)


def test_bom_and_crlf_accepted():
    data = b"\xef\xbb\xbf" + json.dumps(GOOD, indent=1).replace("\n", "\r\n").encode()
    assert parse_task_bytes(data, "t.json").labels == ("positive", "negative")
    csv = b"instruction,input,output\r\nSay hi in French.,hello,bonjour\r\n,bye,au revoir\r\n"
    t = parse_task_bytes(csv, "greet.csv")
    assert t.instruction == "Say hi in French." and len(t.demos) == 2
    assert t.demos[1] == Demo("bye", "au revoir")


def test_csv_many_rows_split_demos_and_test_and_infer_labels():
    rows = "\n".join(f"review {i},{'pos' if i % 2 else 'neg'}" for i in range(20))
    t = parse_task_bytes(f"input,output\n{rows}\n".encode(), "r.csv", instruction="Rate it.")
    assert len(t.demos) == 3 and len(t.test) == 17
    assert t.is_classification and set(t.labels) == {"pos", "neg"}


def test_csv_missing_column_names_line():
    with pytest.raises(TaskError, match=r"line 2: column 'output' is missing"):
        parse_task_bytes(b"input,label\nx,y\n", "x.csv", instruction="i")
    with pytest.raises(TaskError, match="no instruction"):
        parse_task_bytes(b"input,output\nx,y\n", "x.csv")


def test_jsonl_rows_with_split():
    lines = [{"instruction": "Echo.", "input": "a", "output": "a"},
             {"input": "b", "output": "b", "split": "test"}]
    t = parse_task_bytes("\n".join(json.dumps(x) for x in lines).encode(), "e.jsonl")
    assert len(t.demos) == 1 and t.test[0].outputs == ("b",)


@pytest.mark.parametrize("name, kind, labels, metric, n_test", [
    ("task1529", "classification", {"entails", "neutral"}, "exact_match", 600),
    ("task199", "classification", {"yes", "no"}, "exact_match", 600),
    ("task1345", "generation", set(), "rouge_l", 600),
    ("task1562", "generation", set(), "rouge_l", 128),
])
def test_niv2_dev_tasks_load(niv2_dir, name, kind, labels, metric, n_test):
    t = load_task(niv2_dir / f"{name}.json")
    assert (t.name, t.task_type, set(t.labels), t.metric, len(t.test)) == (
        name, kind, labels, metric, n_test)
    assert len(t.demos) >= 3 and t.test[0].id == f"{name}-0"


def test_niv2_labels_inferred_without_hint(niv2_dir):
    d = json.loads((niv2_dir / "task199.json").read_text())
    d.pop("Labels"), d.pop("Metric")
    t = parse_task_bytes(json.dumps(d).encode(), "task199.json")
    assert t.is_classification and set(t.labels) == {"yes", "no"} and t.metric == "exact_match"


@pytest.mark.parametrize("outputs, expected", [
    (["a", "b", "a", "b", "a", "b", "a", "b", "a", "b", "b"], ("b", "a")),
    (["x", "y", "z"], ()),                       # all distinct -> generation
    (["a"] * 10, ()),                            # one value is not a label set
    (["a", "a", "b"], ()),                       # b seen once
])
def test_infer_labels(outputs, expected):
    assert infer_labels(outputs) == expected


def test_load_task_missing_file(tmp_path):
    with pytest.raises(TaskError, match="does not exist"):
        load_task(tmp_path / "nope.json")


def test_examples_shipped_load():
    found = example_tasks()
    assert {"sentiment", "headlines"} <= set(found)
    s = load_task(found["sentiment"])
    assert s.is_classification and len(s.demos) >= 3 and len(s.test) >= 10
    assert load_task(found["headlines"]).task_type == "generation"


def test_validate_task_rejects_bad_type():
    with pytest.raises(TaskError, match="task_type"):
        validate_task(TaskSpec("n", "i", (Demo("a", "b"),), task_type="regression"))


@given(st.binary(max_size=200))
def test_parse_never_raises_other_than_task_error(data):
    for name in ("t.json", "t.jsonl", "t.csv", "t.yaml"):
        try:
            parse_task_bytes(data, name)
        except TaskError:
            pass


@given(st.text(max_size=80))
def test_parse_text_never_raises_other_than_task_error(text):
    for name in ("t.json", "t.yaml", "t.csv"):
        try:
            parse_task_bytes(text.encode("utf-8", "surrogatepass"), name)
        except TaskError:
            pass


def test_example_copies_in_sync():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    for name, path in example_tasks().items():
        assert (repo / "examples" / f"{name}.json").read_bytes() == path.read_bytes(), name
