"""Tests for the lead-owned core: config helpers, events/progress, the fake backend, CLI."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import subprocess
import sys

import pytest

from selfguide.backends import Generator, available, get_generator
from selfguide.backends.fake import FakeGenerator
from selfguide.errors import Cancelled, ConfigError, SelfGuideError
from selfguide.runs.events import EventLog, Progress, format_eta, read_events
from selfguide.settings import fields as C

# --------------------------------------------------------------------------- config

@pytest.mark.parametrize("kwargs, field_name", [
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": 9}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"top_k": -1}, "top_k"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"max_new_tokens": -1}, "max_new_tokens"),
    ({"max_new_tokens": 10**9}, "max_new_tokens"),
    ({"max_time": 0}, "max_time"),
])
def test_sampling_config_rejects_absurd_values(kwargs, field_name):
    with pytest.raises(ConfigError, match=field_name):
        C.SamplingConfig(**kwargs)


def test_sampling_config_greedy_and_stop_tuple():
    s = C.SamplingConfig(temperature=0, stop=["\n"])
    assert s.greedy and s.stop == ("\n",)
    assert not C.SamplingConfig(temperature=0.5).greedy


def test_model_config_validates_choices_and_empty_model():
    with pytest.raises(ConfigError, match="precision"):
        C.ModelConfig(precision="3bit")
    with pytest.raises(ConfigError, match="model"):
        C.ModelConfig(model="  ")


def test_from_dict_coerces_and_rejects_unknown_keys():
    s = C.from_dict(C.SamplingConfig, {"temperature": "0.5", "max_new_tokens": "12",
                                       "stop": "a,b"})
    assert s.temperature == 0.5 and s.max_new_tokens == 12 and s.stop == ("a", "b")
    with pytest.raises(ConfigError, match="Unknown setting"):
        C.from_dict(C.SamplingConfig, {"temprature": 1})
    with pytest.raises(ConfigError, match="not a number"):
        C.from_dict(C.SamplingConfig, {"temperature": "hot"})
    with pytest.raises(ConfigError, match="not an integer"):
        C.from_dict(C.SamplingConfig, {"max_new_tokens": 1.5})


def test_round_trip_and_replace():
    s = C.SamplingConfig(temperature=0.3, stop=("x",))
    assert C.from_dict(C.SamplingConfig, json.loads(json.dumps(C.to_dict(s)))) == s
    assert C.replace(s, temperature=0.9).temperature == 0.9
    with pytest.raises(ConfigError):
        C.replace(s, top_p=2.0)


def test_dataclass_args_use_help_and_only_return_given_options():
    p = argparse.ArgumentParser()
    C.add_dataclass_args(p, C.SamplingConfig)
    C.add_dataclass_args(p, C.ModelConfig)
    helptext = p.format_help()
    for f in dataclasses.fields(C.SamplingConfig):
        assert "--" + f.name.replace("_", "-") in helptext
    assert "Sampling temperature" in helptext
    args = p.parse_args(["--temperature", "0.2", "--chat", "false"])
    assert C.overrides_from_args(args, C.SamplingConfig) == {"temperature": "0.2"}
    assert C.overrides_from_args(args, C.ModelConfig) == {"chat": False}
    with pytest.raises(SystemExit):
        p.parse_args(["--precision", "2bit"])


def test_markdown_table_and_field_help():
    table = C.markdown_table(C.SamplingConfig)
    assert table.count("\n") == 1 + len(dataclasses.fields(C.SamplingConfig))
    assert C.field_help(C.SamplingConfig, "top_k").startswith("Keep only")


# --------------------------------------------------------------------------- events

def test_progress_writes_events_with_eta(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    buf = io.StringIO()
    p = Progress("inputs", 4, events=log, stream=buf, min_interval=0)
    for _ in range(4):
        p.update(1, tokens=10)
    evs = read_events(tmp_path / "events.jsonl", types=("progress",))
    assert [e["done"] for e in evs] == [1, 2, 3, 4]
    assert all(e["total"] == 4 and e["stage"] == "inputs" for e in evs)
    assert evs[-1]["eta"] == 0
    assert "4/4" in buf.getvalue()


@pytest.mark.parametrize("secs, text", [(None, "?"), (-1, "?"), (5, "0:05"), (65, "1:05"),
                                        (3725, "1:02:05")])
def test_format_eta(secs, text):
    assert format_eta(secs) == text


# --------------------------------------------------------------------------- fake backend

def test_fake_generator_scripts_records_streams_and_cancels():
    fake = FakeGenerator(script={"cat": ["meow", "purr"], "*": "hm"}, batch_size=2)
    assert isinstance(fake, Generator)
    seen = []
    out = fake.generate(["a cat", "a dog", "cat again"], C.SamplingConfig(stop=("r",)), n=2,
                        on_result=lambda i, c: seen.append(i))
    assert out == [["meow", "pu"], ["hm", "hm"], ["meow", "pu"]]
    assert seen == [0, 1, 2]
    assert fake.calls[0].n == 2 and fake.calls[0].prompts[1] == "a dog"
    calls = iter([False, True])
    with pytest.raises(Cancelled):
        fake.generate(["x"] * 5, C.SamplingConfig(), cancel=lambda: next(calls))


def test_fake_score_options_prefers_scripted_answer():
    fake = FakeGenerator(script={"good": "positive", "*": "negative"})
    scores = fake.score_options(["good film", "bad film"], ["positive", "negative"])
    assert scores[0][0] > scores[0][1] and scores[1][1] > scores[1][0]


def test_registry_knows_builtins():
    assert {"fake", "hf"} <= set(available())
    assert isinstance(get_generator("fake", script="x"), FakeGenerator)
    with pytest.raises(ConfigError, match="Unknown backend"):
        get_generator("nope")


# --------------------------------------------------------------------------- CLI

def test_cli_help_lists_commands_and_errors_are_one_line(capsys):
    from selfguide.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "COMMAND" in capsys.readouterr().out


def test_cli_runs_without_torch_import():
    code = ("import sys; from selfguide.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_selfguide_error_hint_in_message():
    err = SelfGuideError("Bad thing.", hint="Do this.")
    assert str(err) == "Bad thing.\nHint: Do this." and err.hint == "Do this."
