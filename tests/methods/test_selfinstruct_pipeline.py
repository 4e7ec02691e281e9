"""The Self-Instruct loop end to end with the scripted fake backend; resume after a crash;
the CLI; and a tiny real loop on the embedded model (slow)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from sgtest.selfinstruct import VERBS, WORDS, fake_script  # noqa: F401

from selfguide.backends.fake import FakeGenerator
from selfguide.errors import ConfigError
from selfguide.evaluation.rouge import rouge_l
from selfguide.methods.selfinstruct.config import SelfInstructConfig, SelfInstructFilterConfig
from selfguide.methods.selfinstruct.pipeline import run_self_instruct
from selfguide.methods.selfinstruct.prompts import load_seed_tasks
from selfguide.methods.selfinstruct.table import candidates_table
from selfguide.runs import store
from selfguide.runs.events import EventLog, read_events
from selfguide.runs.rundir import RunDir
from selfguide.settings.fields import replace
from selfguide.task.prompts import instruction_prompt as record_prompt

ROUNDS_FILE = RunDir(".").rounds_file.name




CFG = SelfInstructConfig(num_instructions=12, prompts_per_round=2, max_rounds=10)
FCFG = SelfInstructFilterConfig()


@pytest.fixture()
def seeds():
    return load_seed_tasks()


def _run(tmp_path, seeds, cfg=CFG, gen=None, **kw):
    gen = gen or FakeGenerator(script=fake_script)
    return run_self_instruct(tmp_path / "run", gen, seeds, cfg, FCFG, stream=None, **kw), gen


def test_full_loop_with_fake_backend(tmp_path, seeds):
    report, gen = _run(tmp_path, seeds, events=EventLog(tmp_path / "events.jsonl"))
    run = tmp_path / "run"
    df = pd.read_parquet(run / "candidates.parquet")
    ins = report["instructions"]
    assert ins["accepted"] >= CFG.num_instructions
    assert report["rounds"] == len(store.read_jsonl(run / ROUNDS_FILE))
    # the blacklist, length and near-duplicate (a seed instruction) filters all fired
    assert ins["rejected"]["blacklist"] >= 1 and ins["rejected"]["length"] >= 1
    assert ins["rejected"]["rouge"] >= 1
    assert 1 <= ins["classification"] < ins["accepted"]

    # table: DESIGN.md columns + Self-Instruct columns; unique ids; nothing deleted
    for col in ("id", "method", "round", "prompt_id", "target_label", "raw", "input",
                "samples", "votes", "vote_share", "output", "label", "drop_reason", "kept",
                "instruction", "nearest", "nearest_score", "is_classification",
                "f_rouge", "f_blacklist", "f_unique", "f_consistent"):
        assert col in df.columns, col
    assert df["id"].is_unique
    rej = df[df["drop_reason"] == "rouge"]
    assert (rej["nearest_score"] >= 0.7).all()
    seed_text = "Make a short packing list for the trip described below."
    assert (rej["instruction"] == seed_text).any()
    assert (rej.loc[rej["instruction"] == seed_text, "nearest"] == seed_text).all()
    # every candidate kept its nearest neighbour, which really has that ROUGE-L
    for row in df.sample(10, random_state=0).itertuples():
        assert row.nearest_score == rouge_l(row.instruction, row.nearest)
    # nearest = argmax over the seeds + every instruction accepted before it (ties: first)
    pool = [s.instruction for s in seeds]
    for rec in store.read_jsonl(run / ROUNDS_FILE):
        for c in rec["instructions"]:
            scores = [rouge_l(c["instruction"], p) for p in pool]
            assert c["nearest_score"] == max(scores)
            assert c["nearest_index"] == scores.index(max(scores))
            if c["accepted"]:
                pool.append(c["instruction"])
    # near-duplicates of an instruction accepted earlier in the same round are caught
    same_round = [c for rec in store.read_jsonl(run / ROUNDS_FILE) for c in rec["instructions"]
                  if not c["checks"]["rouge"] and c["nearest_index"] >= len(seeds)
                  and c["nearest"] in {x["instruction"] for x in rec["instructions"]
                                       if x["accepted"]}]
    assert same_round
    # accepted instructions are pairwise < 0.7 and < 0.7 to every seed
    accepted = list(dict.fromkeys(df.loc[df["f_rouge"] & (df["drop_reason"].isin(
        ["", "unique", "consistent", "not_copy"])), "instruction"]))
    pool = [s.instruction for s in seeds]
    for a in accepted:
        assert max(rouge_l(a, p) for p in pool) < 0.7
        pool.append(a)
    # classification rows are output-first: the label is the output; duplicates dropped
    clf = df[df["is_classification"] & df["f_instances"] & (df["drop_reason"] != "rouge")]
    assert set(clf["output"]) == {"Positive", "Negative"}
    assert (clf["label"] == clf["output"]).all()
    assert "unique" in set(df["drop_reason"])

    # dataset: the SELF-GUIDE record format, prompt from prompts.instruction_prompt
    recs = store.read_jsonl(run / "dataset" / "train.jsonl")
    kept = df[df["kept"]]
    assert len(recs) == len(kept) == report["train"] > 0
    by_id = {r.id: r for r in kept.itertuples()}
    for rec in recs:
        row = by_id[rec["id"]]
        assert rec["prompt"] == record_prompt(row.instruction, row.input)
        assert rec["completion"] == rec["output"] == row.output
        assert ("label" in rec) is bool(row.is_classification)
    assert store.read_json(run / "dataset" / "report.json")["kept"] == len(recs)

    # config, manifest, events
    conf = store.read_json(run / "config.json")
    assert conf["method"] == "selfinstruct" and conf["synthesis"]["num_instructions"] == 12
    assert store.read_manifest(run)["stages"]["self-instruct"]["status"] == "done"
    evs = read_events(tmp_path / "events.jsonl")
    prog = [e for e in evs if e["type"] == "progress"]
    assert prog and prog[-1]["done"] == prog[-1]["total"] == 12
    assert any(e["tokens_per_s"] > 0 for e in prog)  # live token counts during rounds
    assert any(e["type"] == "round" for e in evs) and evs[-1]["type"] == "summary"

    # what the model was asked: 8 numbered instructions, 6 seeds + 2 machine once it has some
    gen_calls = [c for c in gen.calls if c.prompts[0].startswith("Come up with a series")]
    seed_set = {s.instruction for s in seeds}
    later = gen_calls[-1].prompts[0]
    shown = re.findall(r"^\d+\. (.*)$", later, flags=re.M)
    assert len(shown) == 8 and later.endswith("\n9.")
    assert sum(s in seed_set for s in shown) == 6
    assert gen_calls[0].sampling.temperature == 0.7 and gen_calls[0].sampling.top_p == 0.5
    assert gen_calls[0].chat is False


class Crash(RuntimeError):
    pass


class CrashingGenerator(FakeGenerator):
    """Dies (like kill -9) on its n-th generate call."""

    def __init__(self, crash_at: int):
        super().__init__(script=fake_script)
        self.crash_at = crash_at

    def generate(self, prompts, sampling, n=1, **kw):
        if len(self.calls) + 1 >= self.crash_at:
            raise Crash("killed")
        return super().generate(prompts, sampling, n, **kw)


def test_resume_after_crash_gives_identical_result(tmp_path, seeds):
    cfg = replace(CFG, prompts_per_round=1)
    ref_report, _ = _run(tmp_path / "ref", seeds, cfg=cfg)
    assert ref_report["rounds"] >= 3
    ref = pd.read_parquet(tmp_path / "ref" / "run" / "candidates.parquet")

    # Crash in the middle of round 2 (3 generate calls per round), then tear the tail as a
    # kill -9 during an append would.
    with pytest.raises(Crash):
        _run(tmp_path, seeds, cfg=cfg, gen=CrashingGenerator(crash_at=8))
    rounds_path = tmp_path / "run" / ROUNDS_FILE
    assert len(store.read_jsonl(rounds_path)) == 2
    assert not (tmp_path / "run" / "candidates.parquet").exists()
    with open(rounds_path, "ab") as fh:
        fh.write(b'{"round": 2, "prompts": [{"tor')
    report, gen = _run(tmp_path, seeds, cfg=cfg, events=EventLog(tmp_path / "ev.jsonl"))
    got = pd.read_parquet(tmp_path / "run" / "candidates.parquet")
    pd.testing.assert_frame_equal(got, ref)
    assert report["instructions"] == ref_report["instructions"]
    assert [r["round"] for r in store.read_jsonl(rounds_path)] == list(range(report["rounds"]))
    first = [e for e in read_events(tmp_path / "ev.jsonl") if e["type"] == "progress"][0]
    assert first["round"] == 2  # the committed rounds were not generated again
    assert any(e["type"] == "log" and "resuming" in e["message"]
               for e in read_events(tmp_path / "ev.jsonl"))

    # Rerunning a finished run generates nothing; raising the target continues it.
    _, gen2 = _run(tmp_path, seeds, cfg=cfg)
    assert gen2.calls == []
    more, _ = _run(tmp_path, seeds, cfg=replace(cfg, num_instructions=20))
    assert more["instructions"]["accepted"] >= 20
    after = pd.read_parquet(tmp_path / "run" / "candidates.parquet")
    assert set(ref["id"]) <= set(after["id"]) and after["id"].is_unique


def test_changed_settings_are_refused(tmp_path, seeds):
    _run(tmp_path, seeds, cfg=replace(CFG, num_instructions=3))
    with pytest.raises(ConfigError, match="different Self-Instruct settings"):
        _run(tmp_path, seeds, cfg=replace(CFG, num_instructions=3, seed=5))
    with pytest.raises(ConfigError, match="different Self-Instruct settings"):
        _run(tmp_path, seeds[:-1], cfg=replace(CFG, num_instructions=3))
    store.atomic_write_json(tmp_path / "other" / "config.json", {"method": "selfguide"})
    with pytest.raises(ConfigError, match="selfguide run"):
        run_self_instruct(tmp_path / "other", FakeGenerator(script=fake_script), seeds, CFG,
                          FCFG, stream=None)


def test_instance_thresholds_reapply_without_regeneration(tmp_path, seeds):
    _run(tmp_path, seeds, cfg=replace(CFG, num_instructions=4))
    rounds = store.read_jsonl(tmp_path / "run" / ROUNDS_FILE)
    strict = candidates_table(rounds, replace(FCFG, max_output_words=1))
    loose = candidates_table(rounds, FCFG)
    assert (strict["drop_reason"] == "output_length").sum() > 0
    assert strict["kept"].sum() < loose["kept"].sum()
    assert list(strict["id"]) == list(loose["id"])


def test_refilter_and_manual_overrides(tmp_path, seeds):
    from selfguide.methods.selfinstruct.pipeline import refilter

    _run(tmp_path, seeds, cfg=replace(CFG, num_instructions=4))
    run = tmp_path / "run"
    before = pd.read_parquet(run / "candidates.parquet")
    kept_id = before.loc[before["kept"], "id"].iloc[0]
    dropped_id = before.loc[before["drop_reason"] == "unique", "id"].iloc[0]
    store.atomic_write_json(run / "overrides.json", {kept_id: False, dropped_id: True})
    report = refilter(run, replace(FCFG, max_output_words=3))
    after = pd.read_parquet(run / "candidates.parquet")
    row = after.set_index("id")
    assert row.loc[kept_id, "drop_reason"] == "manual" and not row.loc[kept_id, "f_manual"]
    assert row.loc[dropped_id, "kept"]
    assert (after["drop_reason"] == "output_length").any()
    assert list(after["id"]) == list(before["id"])
    recs = store.read_jsonl(run / "dataset" / "train.jsonl")
    assert len(recs) == report["train"] == int(after["kept"].sum())
    assert dropped_id in {r["id"] for r in recs} and kept_id not in {r["id"] for r in recs}
    assert store.read_json(run / "config.json")["filters"]["max_output_words"] == 3
    refilter(run, replace(FCFG, max_output_words=3))  # idempotent
    pd.testing.assert_frame_equal(pd.read_parquet(run / "candidates.parquet"), after)
    with pytest.raises(ConfigError, match="rouge_threshold"):
        refilter(run, replace(FCFG, rouge_threshold=0.5))
    store.atomic_write_json(tmp_path / "sg" / "config.json", {"method": "selfguide"})
    with pytest.raises(ConfigError, match="not a Self-Instruct run"):
        refilter(tmp_path / "sg", FCFG)


def test_classification_by_scoring(tmp_path, seeds):
    cfg = replace(CFG, num_instructions=4, classify_with="score")
    report, gen = _run(tmp_path, seeds, cfg=cfg)
    assert any(c.method == "score_options" for c in gen.calls)
    assert report["instructions"]["classification"] >= 1


def test_truncated_instruction_lists_lose_their_last_item(tmp_path, seeds):
    cut = "Explain the river meadow comet in detail.\n10. Summarize the glacier copper"

    def script(prompt, sampling, i):
        if prompt.startswith("Come up with"):
            return " " + cut
        return fake_script(prompt, sampling, i)

    gen = FakeGenerator(script=script)
    gen.count_tokens = lambda text: 10_000 if text.startswith(" Explain") else 1
    cfg = replace(CFG, num_instructions=1, prompts_per_round=1)
    _run(tmp_path, seeds, cfg=cfg, gen=gen)
    df = pd.read_parquet(tmp_path / "run" / "candidates.parquet")
    assert set(df["instruction"]) == {"Explain the river meadow comet in detail."}


def test_cli_self_instruct(workspace, monkeypatch, capsys):
    from selfguide import backends, cli, jobs

    monkeypatch.setattr(backends, "get_generator",
                        lambda name, **kw: FakeGenerator(script=fake_script))
    argv = ["self-instruct", "--run", "si-cli", "--num-instructions", "5",
            "--prompts-per-round", "2", "--blacklist", "poem,story"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "instructions accepted:" in out and "training examples:" in out
    run = store.resolve_run_dir("si-cli", must_exist=True)
    assert store.read_json(run / "config.json")["filters"]["blacklist"] == ["poem", "story"]
    assert jobs.status("si-cli", "self-instruct").state == "finished"
    assert (run / "seed_tasks.jsonl").is_file()
    assert len(store.read_jsonl(run / "dataset" / "train.jsonl")) > 0
    # A bad seed file is a one-paragraph user error with the line number.
    bad = workspace / "bad.jsonl"
    bad.write_text('{"instruction": "x", "instances": []}\n', encoding="utf-8")
    assert cli.main(["self-instruct", "--run", "si-bad", "--seed-tasks", str(bad)]) == 2
    assert "line 1" in capsys.readouterr().err


@pytest.fixture()
def one_torch_thread():
    # On the shared 2-core machine, 2 intra-op threads under load were 5-10x slower than 1
    # (measured: 16 greedy tokens 21-61 s vs 4 s).
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_tiny_real_loop_on_embedded_model(tmp_path, seeds, one_torch_thread):
    """Two rounds on SmolLM2-135M: the loop runs, files are consistent (no quality claim)."""
    from selfguide.backends import get_generator
    from selfguide.settings.fields import ModelConfig

    gen = get_generator("hf", config=ModelConfig(model="embedded", device="cpu"))
    # Budgets kept tiny for a shared 2-core CI machine: 1 prompt per round, at most 2 new
    # instructions per prompt, short instances.
    cfg = SelfInstructConfig(num_instructions=1000, max_rounds=2, prompts_per_round=1,
                             new_per_prompt=2, instruction_max_tokens=32,
                             instance_max_tokens=24, instance_shots=1, clf_shots=4)
    report = run_self_instruct(tmp_path / "run", gen, seeds, cfg, FCFG, stream=None)
    assert report["rounds"] == 2 and report["prompts"] == 2
    rounds = store.read_jsonl(tmp_path / "run" / ROUNDS_FILE)
    assert all(p["raw"] is not None for r in rounds for p in r["prompts"])
    df = pd.read_parquet(tmp_path / "run" / "candidates.parquet")
    recs = store.read_jsonl(tmp_path / "run" / "dataset" / "train.jsonl")
    assert len(recs) == int(df["kept"].sum()) if len(df) else len(recs) == 0
    print(json.dumps({k: report[k] for k in ("instructions", "instances", "train")}))


@pytest.mark.slow
def test_cli_kill9_then_rerun_continues(workspace, tiny_model_dir):
    """A real ``selfguide self-instruct`` process (tiny Llama) is SIGKILLed after its first
    committed round; rerunning continues: rounds 0..N-1 exactly once, unique ids."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from selfguide import jobs

    run = workspace / "runs" / "si-kill"
    argv = [sys.executable, "-m", "selfguide", "self-instruct", "--run", "si-kill",
            "--model", str(tiny_model_dir), "--precision", "fp32", "--device", "cpu",
            "--num-instructions", "1000", "--prompts-per-round", "2",
            "--instruction-max-tokens", "12", "--instance-max-tokens", "12",
            "--instance-shots", "0", "--clf-shots", "2", "--min-instruction-words", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*argv, "--max-rounds", "500"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(store.read_jsonl(run / ROUNDS_FILE)) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    committed = len(store.read_jsonl(run / ROUNDS_FILE))
    assert committed >= 2
    assert jobs.status("si-kill", "self-instruct").state == "interrupted"
    target = committed + 2
    done = subprocess.run([*argv, "--max-rounds", str(target)], env=env,
                          capture_output=True, text=True, timeout=180)
    # The tiny model's instances rarely survive the filters; a run that produced no training
    # example exits 2 and is not marked done (issue 14, item 5) - resumption is what counts.
    empty = "produced no training example" in done.stderr
    assert done.returncode == (2 if empty else 0), done.stderr[-2000:]
    rounds = store.read_jsonl(run / ROUNDS_FILE)
    assert [r["round"] for r in rounds] == list(range(target))
    df = pd.read_parquet(run / "candidates.parquet")
    assert df["id"].is_unique and set(df["round"]) <= set(range(target))
    assert jobs.status("si-kill", "self-instruct").state == ("failed" if empty else "finished")
