"""One more round (issue 34): the tuned model re-answers a SELF-GUIDE run's inputs (scripted
fake generator), round 1's files are kept, the filters run again, and training and
evaluation (tiny real model) run after it; the CLI's refusals; ``run --rounds 2``."""

from __future__ import annotations

import pytest
from sgtest.selfguide import SMALL, TASK, script

from selfguide import cli
from selfguide.backends.fake import FakeGenerator
from selfguide.errors import ConfigError
from selfguide.evaluation import predict as evaluation
from selfguide.methods.selfguide import pipeline as P
from selfguide.methods.selfguide import relabel as R
from selfguide.methods.selfguide.config import FilterConfig
from selfguide.methods.selfguide.report import format_report
from selfguide.runs import rounds
from selfguide.runs.rundir import RunDir
from selfguide.runs.stale import stale_stages
from selfguide.settings.evaluation import EvalConfig
from selfguide.settings.fields import ModelConfig
from selfguide.settings.training import TrainConfig
from selfguide.task.prompts import task_prompt
from selfguide.training import trainer

TRAIN = TrainConfig(method="lora", precision="fp32", max_steps=2, batch_size=4, grad_accum=1,
                    val_fraction=0.0)


def _synthesized(workspace, model_dir, name="r") -> RunDir:
    run = RunDir.named(name, create=True)
    P.prepare_run(run, TASK, SMALL, FilterConfig(), ModelConfig(model=str(model_dir)))
    P.synthesize(run, TASK, SMALL, FakeGenerator(script=script), stream=None)
    return run


def tuned(prompt: str, sampling, i: int) -> str:
    """The 'tuned model': the other label than the base script reads, always in the
    trained form (so round 2's labels visibly come from it)."""
    base = script(prompt, sampling, 1)
    return {"positive": "negative", "negative": "positive"}.get(base, base)


def test_round_two_reanswers_the_same_inputs_keeps_round_one_and_trains_again(
        workspace, tiny_model_dir, tmp_path):
    run = _synthesized(workspace, tiny_model_dir)
    trainer.train(run.path, TRAIN)
    probe = tmp_path / "probe.txt"  # the same inputs for both rounds' evaluations
    probe.write_text("A lovely bright film.\nA dull slow plot.\n")
    evaluation.evaluate(run.path, EvalConfig(limit=3), unlabeled_file=probe)
    before = {f: (run.path / f).read_bytes() for f in
              ("annotations.jsonl", "dataset/train.jsonl", "dataset/report.json",
               "labelling.json", "eval/metrics.json")}
    adapter_1 = run.adapter_fingerprint()
    ids_1 = {r["id"] for r in run.read_log(run.annotations_file)}
    assert stale_stages(run) == {}

    gen = FakeGenerator(script=tuned)
    report = R.relabel(run, gen, stream=None)

    kept = rounds.round_dir(run, 1)  # round 1 kept whole, adapter and evaluation too
    for f, data in before.items():
        assert (kept / f).read_bytes() == data, f
    assert (kept / "train/adapter/selfguide_adapter.json").is_file()
    assert (run.path / "labelling.json").read_bytes() == before["labelling.json"]
    # the same inputs, answered again by the generator given (the tuned model) only
    ids_2 = {r["id"] for r in run.read_log(run.annotations_file)}
    assert ids_2 == ids_1
    inputs = {r["id"]: r["input"] for r in run.read_log(run.inputs_file)}
    asked = {p for c in gen.calls for p in c.prompts}
    assert asked and all(any(task_prompt(TASK, inputs[i]) in p for i in ids_1) for p in asked)
    old_labels = {r["id"]: r["label"] for r in RunDir(kept).read_records()}
    new_labels = {r["id"]: r["label"] for r in run.read_records()}
    both = set(old_labels) & set(new_labels)
    assert both and all(old_labels[i] != new_labels[i] for i in both)  # re-filtered: new labels
    assert report["round"] == {"round": 2, "source": "answers from the tuned model of round 1"}
    assert run.read_report()["round"]["round"] == 2
    assert "Round 2: answers from the tuned model of round 1" in format_report(report)
    from selfguide.export import cards

    facts = cards.run_facts(run.path)
    for card in (cards.dataset_card(facts, fmt="jsonl", files=["train.jsonl"]),
                 cards.model_card(facts)):
        assert "Round 2: answers from the tuned model of round 1" in card
    assert rounds.state(run) == {"current": 2, "state": "done",
                                 "source": "answers from the tuned model of round 1"}
    assert set(stale_stages(run)) == {"train", "eval"}  # like any dataset change
    assert R.relabel(run, gen, target=2, stream=None) == run.read_report()  # nothing to do

    P.refilter(run)  # a re-filter keeps saying which round the dataset is
    assert run.read_report()["round"]["round"] == 2
    trainer.train(run.path, TRAIN)  # from the base, on round 2's data: nothing refuses
    assert run.adapter_fingerprint() != adapter_1
    assert run.read_train_metrics()["resumed_from"] is None  # round 1's checkpoints unused
    with pytest.raises(ConfigError, match="holds round 2"):  # no base answers mixed in
        P.synthesize(run, TASK, SMALL, FakeGenerator(script=script), stream=None)
    summary = evaluation.evaluate(run.path, EvalConfig(limit=3), unlabeled_file=probe)
    assert summary["n"] and stale_stages(run) == {}
    from selfguide.commands.run import round_lines

    lines = round_lines(run)  # what 'selfguide run --rounds 2' prints at the end
    assert [x.split(":")[0] for x in lines] == ["round 1", "round 2"]
    with pytest.raises(ConfigError, match="round 3 needs round 2|round 4 needs round 3"):
        R.relabel(run, gen, target=4, stream=None)


def test_a_killed_round_continues_and_synthesis_refuses_to_finish_it(workspace,
                                                                     tiny_model_dir):
    run = _synthesized(workspace, tiny_model_dir, "k")
    run.write_adapter_manifest(run.adapter_dir, {"kind": "lora"})  # an adapter on record
    crash = type("Crash", (FakeGenerator,), {
        "generate": lambda self, *a, **kw: (_ for _ in ()).throw(RuntimeError("killed"))})
    with pytest.raises(RuntimeError, match="killed"):
        R.relabel(run, crash(script=tuned), stream=None)
    assert rounds.state(run)["state"] == "labelling"
    assert rounds.dataset_round(run) is None  # the dataset on disk is still round 1's
    with pytest.raises(ConfigError, match="half way through round 2"):
        P.synthesize(run, TASK, SMALL, FakeGenerator(script=script), stream=None)
    with pytest.raises(ConfigError, match="half made"):
        R.relabel(run, FakeGenerator(script=tuned), target=3, stream=None)
    report = R.relabel(run, FakeGenerator(script=tuned), stream=None)
    assert report["round"]["round"] == 2 and rounds.archived(run) == [1]
    P.prepare_run(run, TASK, SMALL, FilterConfig(), ModelConfig(model=str(tiny_model_dir)),
                  overwrite=True)  # discarding the data discards its rounds
    assert rounds.archived(run) == [] and rounds.state(run)["current"] == 1


def test_relabel_command_refuses_clearly(workspace, tiny_model_dir, capsys):
    def relabel(name, *extra):
        rc = cli.main(["relabel", "--run", name, *extra])
        return rc, capsys.readouterr().err

    other = RunDir.named("other", create=True)
    other.write_config({"method": "selfinstruct"})
    rc, err = relabel("other")
    assert rc == 2 and "Self-Instruct" in err and "no relabel round" in err

    run = _synthesized(workspace, tiny_model_dir, "fresh")
    rc, err = relabel("fresh")
    assert rc == 2 and "no trained adapter yet" in err and "selfguide train --run fresh" in err

    run.write_adapter_manifest(run.adapter_dir, {"kind": "lora"})
    rc, err = relabel("fresh", "--round", "3")
    assert rc == 2 and "round 3 needs round 2" in err
    run.inputs_file.unlink()
    rc, err = relabel("fresh")
    assert rc == 2 and "no synthetic inputs" in err and "selfguide synthesize" in err
    assert rounds.archived(run) == []  # nothing changed
    assert not run.job_dir("relabel").exists()  # a refusal is not a failed job

    rc, err = relabel("missing")
    assert rc == 2
    rc, err = relabel("fresh", "--round", "two")
    assert rc == 2 and "give the round to make, 2 or more" in err
    rc, err = relabel("fresh", "--protocol", "loud")
    assert rc == 2 and "same, answer, chat, plain" in err


def test_run_with_two_rounds_relabels_and_trains_again(monkeypatch, tmp_path):
    from selfguide.commands import run as run_cmd

    task = tmp_path / "t.json"
    task.write_text('{"instruction": "Say it back.", "examples": [{"input": "a", "output": '
                    '"a"}, {"input": "b", "output": "b"}, {"input": "c", "output": "c"}]}')
    seen = []
    monkeypatch.setattr(run_cmd, "_stage", lambda argv: seen.append(argv[0:1] + argv[3:]
                                                                     if argv[0] == "relabel"
                                                                     else argv[:1]))
    monkeypatch.setattr(RunDir, "named", classmethod(lambda cls, name, **kw: RunDir(tmp_path)))
    args = cli.build_parser().parse_args(["run", str(task), "--run", "two", "--rounds", "2"])
    assert run_cmd.run(args) == 0
    assert seen == [["synthesize"], ["filter"], ["train"], ["eval"], ["relabel", "--round", "2"],
                    ["train"], ["eval"]]
    seen.clear()  # a rerun of a run whose relabel was killed: relabel continues first
    rounds.set_state(RunDir(tmp_path), 2, "labelling")
    assert run_cmd.run(args) == 0
    assert seen == [["filter"], ["relabel", "--round", "2"], ["train"], ["eval"]]
    seen.clear()  # a rerun of a finished round-2 run: no synthesis into it
    rounds.set_state(RunDir(tmp_path), 2, "done")
    assert run_cmd.run(args) == 0
    assert seen == [["filter"], ["train"], ["eval"]]
    with pytest.raises(ConfigError, match="--rounds '0'"):
        run_cmd.validate_early(cli.build_parser().parse_args(["run", str(task), "--rounds",
                                                              "0"]))


def test_relabel_command_answers_with_the_tuned_model(workspace, tiny_model_dir, capsys):
    """The real path: base + adapter loaded as the generator (a tiny random model, so its
    answers may all be filtered out; either way round 1 is kept and round 2 was answered)."""
    run = _synthesized(workspace, tiny_model_dir, "real")
    trainer.train(run.path, TRAIN)
    ids_1 = {r["id"] for r in run.read_log(run.annotations_file)}
    rc = cli.main(["relabel", "--run", "real", "--precision", "fp32"])
    out, err = capsys.readouterr()
    assert rc == 0 or (rc == 2 and "passes the filters" in err), err
    assert (rounds.round_dir(run, 1) / "train/adapter/adapter_model.safetensors").is_file()
    assert {r["id"] for r in run.read_log(run.annotations_file)} == ids_1
    if rc == 0:
        assert "Round 2: answers from the tuned model of round 1" in out
        assert run.read_manifest()["stages"]["relabel"]["status"] == "done"


def test_round_two_may_label_in_the_form_the_tuned_model_answers_in(workspace, tiny_model_dir):
    run = _synthesized(workspace, tiny_model_dir, "proto")
    run.write_adapter_manifest(run.adapter_dir, {"kind": "lora", "chat": True})
    first = run.read_labelling()
    other = {"chat": "plain", "plain": "chat"}[first["protocol"]]
    R.relabel(run, FakeGenerator(script=tuned), protocol=other, stream=None)
    now = run.read_labelling()
    assert now["protocol"] == other and now["chosen_by"] == "relabel"
    assert now["evidence"] == first["evidence"]
    assert RunDir(rounds.round_dir(run, 1)).read_labelling() == first  # round 1's kept
    assert run.read_report()["labelling"]["protocol"] == other
    bare = _synthesized(workspace, tiny_model_dir, "bare")
    bare.write_adapter_manifest(bare.adapter_dir, {"kind": "lora"})
    lab = bare.read_labelling()
    bare.write_labelling({**lab, "evidence": {**lab["evidence"], "protocols": {
        lab["protocol"]: lab["evidence"]["protocols"][lab["protocol"]]}}})
    with pytest.raises(ConfigError, match="no labelling evidence"):
        R.relabel(bare, FakeGenerator(script=tuned), protocol=other, stream=None,
                  dry_run=True)
    assert rounds.archived(bare) == []
