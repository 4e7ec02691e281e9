"""The SELF-GUIDE pipeline with the scripted fake backend: a full stage-1+2 run, resume
after a crash in either stage (no duplicate, no lost rows), cancel, config guards, the CLI
commands, and one small real run with the embedded model (slow)."""

from __future__ import annotations

import json
import random
from dataclasses import replace as dataclass_replace

import pandas as pd
import pytest
from sgtest.selfguide import NOUNS, SMALL, TASK, WORDS, _run, asked_label, script  # noqa: F401

from selfguide import cli
from selfguide.backends.fake import FakeGenerator
from selfguide.errors import Cancelled, ConfigError
from selfguide.methods.selfguide import pipeline as P
from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
from selfguide.methods.selfguide.report import format_report
from selfguide.methods.selfguide.stages import row_id
from selfguide.runs import store
from selfguide.runs.events import EventLog, read_events
from selfguide.task.prompts import task_prompt
from selfguide.task.spec import Demo, TaskSpec

# 4 stage-1 calls, then the labelling evidence (per protocol: leave-one-out on the demos,
# a probe of 5 inputs; calls 5-8), then stage-2 batches of 5 (calls 9-)


class Crashing(FakeGenerator):
    """Raises on the ``crash_at``-th generate call, like a kill -9 in the middle."""

    def __init__(self, crash_at: int, **kw):
        super().__init__(**kw)
        self.crash_at, self.n = crash_at, 0

    def generate(self, *a, **kw):
        self.n += 1
        if self.n == self.crash_at:
            raise RuntimeError("simulated crash")
        return super().generate(*a, **kw)




def test_min_inputs_adds_rounds_while_too_few_inputs_pass(tmp_path):
    """A model that keeps writing the same few inputs gets more rounds, up to max_rounds;
    one that writes enough distinct inputs gets none; a rerun resumes the same rounds."""
    def repetitive(prompt: str, sampling, i: int) -> str:
        if prompt.endswith("Input:"):  # stage 1: one of two inputs, whatever is asked
            r = random.Random(f"{prompt}|{sampling.seed}|{i}")
            return r.choice(["Input: The dull plot was weak and slow.",
                             "Input: The fun cast was lovely and bright."])
        return script(prompt, sampling, i)

    cfg = SynthesisConfig(rounds=2, prompts_per_round=4, n_samples=2, min_inputs=10,
                          max_rounds=5)
    run_dir = tmp_path / "rep"
    events = EventLog(tmp_path / "rep-events.jsonl")
    _run(run_dir, FakeGenerator(script=repetitive), cfg, events=events)
    rounds = {r["round"] for r in store.read_jsonl(run_dir / "inputs.jsonl")}
    assert rounds == {0, 1, 2, 3, 4}  # 2 planned + 3 added, stopped by max_rounds
    logs = [e["message"] for e in read_events(tmp_path / "rep-events.jsonl")
            if e.get("type") == "log" and "min_inputs" in e.get("message", "")]
    assert len(logs) == 3 and "fewer than min_inputs=10" in logs[0]
    again = FakeGenerator(script=repetitive)
    _run(run_dir, again, cfg)
    assert not [c for c in again.calls if c.prompts[0].endswith("Input:")]  # nothing redone

    run_dir = tmp_path / "varied"
    gen = FakeGenerator(script=script)
    _run(run_dir, gen, dataclass_replace(cfg, min_inputs=4))
    assert {r["round"] for r in store.read_jsonl(run_dir / "inputs.jsonl")} == {0, 1}
    assert SynthesisConfig(rounds=6, min_inputs=60).round_limit == 12
    assert SynthesisConfig(rounds=6).round_limit == 6
    with pytest.raises(ConfigError, match="max_rounds"):
        SynthesisConfig(rounds=6, min_inputs=10, max_rounds=3)


def test_topup_rounds_ask_only_for_labels_that_came_out_rare(tmp_path):
    """Inputs asked for "negative" mostly read as positive, so after labelling negatives
    are rare: top-up rounds ask only for them until min_per_label is met (or topup_rounds
    runs out); the report and the funnel say so; a rerun generates nothing; off, none."""
    def skewed(prompt: str, sampling, i: int) -> str:
        target = asked_label(prompt, ("negative", "positive"))
        if target:
            r = random.Random(f"{prompt}|{sampling.seed}")
            lab = target if target == "positive" or r.random() < 0.2 else "positive"
            body = " ".join(f"{r.choice(WORDS[lab])} {r.choice(NOUNS)}" for _ in range(3))
            return f"Input: The {body} {r.randint(0, 10**6)}.\nOutput: {target}"
        return script(prompt, sampling, i)

    cfg = SynthesisConfig(rounds=3, prompts_per_round=8, n_samples=2, probe_inputs=4,
                          min_per_label=6, topup_rounds=3)
    events = EventLog(tmp_path / "events.jsonl")
    rep = _run(tmp_path / "r", FakeGenerator(script=skewed), cfg, events=events)
    rows = store.read_jsonl(tmp_path / "r" / "inputs.jsonl")
    extra = [r for r in rows if r["round"] >= 3]
    assert extra and {r["target_label"] for r in extra} == {"negative"}
    first = rep["topup"][0]
    assert first["round"] == 3 and set(first["asked_for"]) == {"negative"}
    last = rep["topup"][-1]["after"]
    assert last["negative"] > first["asked_for"]["negative"]
    assert len(rep["topup"]) == 3 or last["negative"] >= 6
    assert len({r["round"] for r in extra}) == len(rep["topup"])
    assert "Top-up round 4: too few examples of negative" in format_report(rep)
    assert store.read_json(tmp_path / "r" / "dataset" / "report.json")["topup"] == rep["topup"]
    logs = [e["message"] for e in read_events(tmp_path / "events.jsonl")
            if e.get("type") == "log" and "top-up" in e.get("message", "")]
    assert len(logs) == len(rep["topup"])
    again = FakeGenerator(script=skewed)
    assert _run(tmp_path / "r", again, cfg)["topup"] == rep["topup"]
    assert not [c for c in again.calls if c.prompts[0].endswith("Input:")]  # nothing redone
    off = _run(tmp_path / "off", FakeGenerator(script=skewed),
               dataclass_replace(cfg, min_per_label=0))
    assert "topup" not in off
    assert {r["round"] for r in store.read_jsonl(tmp_path / "off" / "inputs.jsonl")} == {0, 1, 2}


def test_full_run_with_fake(tmp_path):
    run_dir = tmp_path / "run"
    gen = FakeGenerator(script=script)
    items = []
    events = EventLog(tmp_path / "events.jsonl")
    report = _run(run_dir, gen, events=events, on_item=items.append)
    # stage 1: 4 rounds of 6 prompts; stage 2 asks 4 samples per kept input, scores labels
    inputs = store.read_jsonl(run_dir / "inputs.jsonl")
    assert [r["id"] for r in inputs] == [row_id(r, p) for r in range(4) for p in range(6)]
    assert all(not r["input"].startswith("Input:") and "Output" not in r["input"]
               for r in inputs)
    assert len(items) == 24 and items[0]["id"] == "r000-p000"
    gen_calls = [c for c in gen.calls if c.method == "generate"]
    assert [len(c.prompts) for c in gen_calls[:4]] == [6] * 4
    assert all(c.n == 4 and c.sampling.temperature == 0.3 for c in gen_calls[4:])
    assert gen_calls[0].sampling.temperature == 1.0 and gen_calls[0].chat is False
    # later rounds show earlier inputs written for the same label (before that label's
    # demos) as lower-quality examples
    def own(prompt: str) -> int:
        target = prompt.rsplit('Inputs whose answer is "', 1)[1].split('"')[0]
        return sum(d.output == target for d in TASK.demos)

    assert all(p.count("Input:") == own(p) + 1 for p in gen_calls[0].prompts)
    assert any(p.count("Input:") > own(p) + 1 for p in gen_calls[1].prompts)
    assert any(c.method == "score_options" and c.options == [" positive", " negative"]
               for c in gen.calls)
    # candidates table: every row, every column of the contract
    df = pd.read_parquet(run_dir / "candidates.parquet")
    assert len(df) == 24 and df["id"].is_unique
    for col in ("id", "method", "round", "prompt_id", "target_label", "raw", "input", "samples",
                "votes", "vote_share", "output", "label", "drop_reason", "kept", "f_empty",
                "f_near_duplicate", "f_consistency", "f_label", "f_balance"):
        assert col in df.columns, col
    ann = df[df["f_annotated"]]
    assert len(ann) == len(store.read_jsonl(run_dir / "annotations.jsonl"))
    row = ann.iloc[0]
    assert len(row["samples"]) == 4 and row["vote_share"] == pytest.approx(0.75)
    assert json.loads(row["votes"])[row["output"]] == 3
    # dataset: kept rows with the evaluation prompt, balanced labels
    recs = json.loads("[" + ",".join((run_dir / "dataset" / "train.jsonl").read_text()
                                     .splitlines()) + "]")
    assert len(recs) == report["kept"] == int(df["kept"].sum()) > 0
    assert all(r["prompt"] == task_prompt(TASK, r["input"]) for r in recs)
    assert all(r["completion"] == r["label"] in TASK.labels for r in recs)
    labels = [r["label"] for r in recs]
    assert labels.count("positive") == labels.count("negative")
    assert report["strategies"]["vote"]["target_agreement"] > 0.9
    assert report["strategies"]["target"]["target_agreement"] == 1.0
    # events: progress per stage and an item per input
    evs = read_events(tmp_path / "events.jsonl")
    assert {e["stage"] for e in evs if e["type"] == "progress"} == {"inputs", "annotate"}
    assert sum(e["type"] == "item" for e in evs) == 24
    assert evs[-1]["type"] == "funnel"
    assert store.read_manifest(run_dir)["stages"]["synthesize"]["status"] == "done"


# stage 1 (2, 4), labelling evidence (6), stage-2 batches (10, 11)
@pytest.mark.parametrize("crash_at", [2, 4, 6, 10, 11])
def test_resume_after_crash_no_dup_no_loss(tmp_path, crash_at):
    # the fake writes an input from its prompt alone, and by_label's round-0 prompts repeat
    # per label (a real model samples each row anew), so the crash points are counted on
    # the mixed form's more varied prompts; resumption does not depend on the form
    cfg = dataclass_replace(SMALL, input_prompt="mixed")
    ref_dir = tmp_path / "ref"
    _run(ref_dir, FakeGenerator(script=script), cfg)
    run_dir = tmp_path / "crash"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(run_dir, Crashing(crash_at, script=script), cfg)
    # a torn half-line, as a kill -9 in the middle of an append would leave
    with open(run_dir / "inputs.jsonl", "ab") as fh:
        fh.write(b'{"id": "r9')
    gen = FakeGenerator(script=script)
    _run(run_dir, gen, cfg)
    ids = [r["id"] for r in store.read_jsonl(run_dir / "inputs.jsonl")]
    assert len(ids) == len(set(ids)) == 24
    ann = [r["id"] for r in store.read_jsonl(run_dir / "annotations.jsonl")]
    assert len(ann) == len(set(ann))
    ref = pd.read_parquet(ref_dir / "candidates.parquet")
    got = pd.read_parquet(run_dir / "candidates.parquet")
    cols = ["id", "input", "output", "vote_share", "label", "kept", "drop_reason"]
    pd.testing.assert_frame_equal(ref[cols], got[cols])
    assert (ref_dir / "dataset" / "train.jsonl").read_text() == \
        (run_dir / "dataset" / "train.jsonl").read_text()
    # the rerun only generated what was missing: 4 rounds, crash on call `crash_at`
    stage1 = [c for c in gen.calls if c.method == "generate"
              and c.prompts[0].endswith("Input:")]
    assert len(stage1) == max(0, 4 - (crash_at - 1))
    if crash_at > 8:  # the evidence and the stage-2 batches finished before the crash
        n_ann = len(store.read_jsonl(ref_dir / "annotations.jsonl"))  # are not redone
        stage2 = [c for c in gen.calls if c.method == "generate" and c not in stage1]
        assert sum(len(c.prompts) for c in stage2) == n_ann - 5 - 5 * (crash_at - 9)


def test_rerun_of_finished_run_generates_nothing(tmp_path):
    _run(tmp_path / "r", FakeGenerator(script=script))
    gen = FakeGenerator(script=script)
    _run(tmp_path / "r", gen)
    assert [c.method for c in gen.calls] == []


def test_cancel_then_resume(tmp_path):
    flag = {"n": 0}

    def cancel():
        flag["n"] += 1
        return flag["n"] > 3
    with pytest.raises(Cancelled):
        _run(tmp_path / "r", FakeGenerator(script=script, batch_size=2), cancel=cancel)
    assert 0 < len(store.read_jsonl(tmp_path / "r" / "inputs.jsonl")) < 24
    report = _run(tmp_path / "r", FakeGenerator(script=script))
    assert report["candidates"] == 24


def test_config_change_refused_unless_overwrite(tmp_path):
    _run(tmp_path / "r", FakeGenerator(script=script))
    other = SynthesisConfig(rounds=2, prompts_per_round=6, n_samples=4)
    with pytest.raises(ConfigError, match="different task, model or synthesis settings"):
        P.prepare_run(tmp_path / "r", TASK, other, FilterConfig())
    P.prepare_run(tmp_path / "r", TASK, other, FilterConfig(), overwrite=True)
    assert not (tmp_path / "r" / "inputs.jsonl").exists()
    # filter settings alone may change
    P.prepare_run(tmp_path / "r", TASK, other, FilterConfig(min_frequency=0.5))


def test_refilter_changes_strategy_without_generating(tmp_path):
    run_dir = tmp_path / "r"
    _run(run_dir, FakeGenerator(script=script))
    before = P.load_candidates(run_dir)
    rep = P.refilter(run_dir, FilterConfig(label_strategy="target", balance=False))
    after = P.load_candidates(run_dir)
    assert len(after) == len(before) and rep["label_strategy"] == "target"
    assert (after.loc[after["kept"], "label"] == after.loc[after["kept"], "target_label"]).all()
    assert store.read_json(run_dir / "config.json")["filters"]["label_strategy"] == "target"
    # the parquet can be rebuilt from the JSONL files
    (run_dir / "candidates.parquet").unlink()
    rebuilt = P.load_candidates(run_dir)
    assert rebuilt["id"].tolist() == before["id"].tolist()


def test_generation_task_run(tmp_path):
    task = TaskSpec(name="para", instruction="Paraphrase the question.",
                    demos=(Demo("how do I learn to cook rice", "what is the way to cook rice"),
                           Demo("why is the sky blue during the day", "what makes the sky blue")))

    def gscript(prompt, sampling, i):
        if prompt.endswith("\n\nInput:"):
            r = random.Random(f"{prompt}|{sampling.seed}")
            return "how do I " + " ".join(r.choice(NOUNS) for _ in range(5))
        q = prompt.rsplit("Input:", 1)[1].split("\n")[0].strip()
        return ["what is the way to " + q[9:], "what is the way to " + q[9:], q][i % 3]
    cfg = SynthesisConfig(rounds=3, prompts_per_round=5, n_samples=3)
    P.prepare_run(tmp_path / "g", task, cfg, FilterConfig())
    rep = P.synthesize(tmp_path / "g", task, cfg, FakeGenerator(script=gscript), stream=None)
    recs = store.read_jsonl(tmp_path / "g" / "dataset" / "train.jsonl")
    assert rep["kept"] == len(recs) > 0 and "label" not in recs[0]
    assert all(r["completion"].startswith("what is the way to") for r in recs)
    assert rep["strategies"] == {}
    assert not rep["answers"]["edits_lightly"]  # the demos rewrite: the input is no candidate
    assert "Answers (demos): outputs are" in format_report(rep)


# --------------------------------------------------------------------------- CLI

@pytest.fixture()
def fake_models(monkeypatch):
    from selfguide import backends

    monkeypatch.setattr(backends, "get_generator", lambda name, **kw: FakeGenerator(script=script))


def test_cli_synthesize_filter_export_runs(workspace, tmp_path, fake_models, capsys):
    task_file = tmp_path / "sent.json"
    d = TASK.to_dict()
    d["examples"] = d.pop("demos")
    task_file.write_text(json.dumps(d))
    rc = cli.main(["synthesize", str(task_file), "--run", "s1", "--rounds", "3",
                   "--prompts-per-round", "6", "--n-samples", "4"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "Funnel" in out.out and "By label" in out.out and "agreement" in out.out
    assert "inputs [" in out.err and "annotate [" in out.err
    run_dir = workspace / "runs" / "s1"
    cfg = store.read_json(run_dir / "config.json")
    assert cfg["synthesis"]["rounds"] == 3 and cfg["method"] == "selfguide"
    assert cfg["model"]["model"] == "embedded" and "selfguide" in cfg["versions"]
    assert store.read_json(run_dir / "jobs" / "synthesize" / "status.json")["state"] == "finished"

    assert cli.main(["filter", "--run", "s1", "--label-strategy", "target",
                     "--min-frequency", "0.9"]) == 0
    assert "strategy: target" in capsys.readouterr().out
    assert store.read_json(run_dir / "dataset" / "report.json")["label_strategy"] == "target"

    for fmt, name in (("jsonl", "train.jsonl"), ("alpaca", "alpaca.json")):
        assert cli.main(["export", "--run", "s1", "--format", fmt]) == 0
        assert (run_dir / "export" / name).is_file()
    alpaca = json.loads((run_dir / "export" / "alpaca.json").read_text())
    assert alpaca[0]["instruction"] == TASK.instruction
    assert cli.main(["export", "--run", "s1", "--format", "hf-dataset"]) == 0
    from datasets import load_from_disk

    assert len(load_from_disk(str(run_dir / "export" / "hf-dataset"))) == len(alpaca)

    capsys.readouterr()
    assert cli.main(["runs"]) == 0
    assert "s1" in capsys.readouterr().out
    assert cli.main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["kept"] == len(alpaca)


def test_cli_errors_are_actionable(workspace, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"instruction": "caf\xe9"}')
    assert cli.main(["synthesize", str(bad), "--run", "x"]) == 2
    assert "byte offset" in capsys.readouterr().err
    assert cli.main(["filter", "--run", "missing"]) == 2
    assert cli.main(["synthesize", str(bad), "--run", "../etc"]) == 2


# --------------------------------------------------------------------------- real model

@pytest.mark.slow
def test_small_real_run_embedded(tmp_path):
    from selfguide import backends
    from selfguide.settings.fields import ModelConfig

    gen = backends.get_generator("hf", config=ModelConfig())
    cfg = SynthesisConfig(rounds=1, prompts_per_round=4, n_samples=2, input_max_new_tokens=24,
                          output_max_new_tokens=4)
    P.prepare_run(tmp_path / "real", TASK, cfg, FilterConfig())
    rep = P.synthesize(tmp_path / "real", TASK, cfg, gen, stream=None)
    df = P.load_candidates(tmp_path / "real")
    assert len(df) == 4 and df["raw"].str.len().sum() > 0
    assert rep["candidates"] == 4 and set(rep["strategies"]) == {"vote", "rank", "calibrated",
                                                                 "own", "target"}
    ann = df[df["f_annotated"]]
    assert all(len(s) == 2 for s in ann["samples"])
    assert all(s is not None and len(s) == 2 for s in ann["label_scores"])
