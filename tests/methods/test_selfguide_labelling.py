"""Self-labelling: the protocol and strategy are chosen from the demos (leave-one-out) and a
probe of the inputs, recorded in labelling.json and the dataset report, and the
``selfguide label`` command labels rows the same way (fake backends; one real run)."""

from __future__ import annotations

import json

import pytest
from sgtest.labelling import NEG, POS, SMALL, TASK, LuckyDemos, ProtocolFake, truth  # noqa: F401

from selfguide import cli
from selfguide.backends.fake import FakeGenerator
from selfguide.methods.selfguide.label_inputs import label_rows, read_inputs
from selfguide.errors import DatasetError
from selfguide.methods.selfguide import choice, labelling
from selfguide.methods.selfguide import pipeline as P
from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig, preset
from selfguide.methods.selfguide.strategies import _binomial_tail, agreement
from selfguide.runs import store
from selfguide.runs.rundir import RunDir
from selfguide.task.spec import Demo, TaskSpec


def _synth(tmp_path, gen, synth=SMALL, filters=FilterConfig()):
    run_dir = tmp_path / "run"
    P.prepare_run(run_dir, TASK, synth, filters)
    return run_dir, P.synthesize(run_dir, TASK, synth, gen, filters=filters, stream=None)


@pytest.mark.parametrize("good", ["chat", "plain"])
def test_stage2_labels_in_the_protocol_that_gets_the_demos_right(tmp_path, good):
    run_dir, report = _synth(tmp_path, ProtocolFake(good))
    stored = store.read_json(RunDir(run_dir).labelling_file)
    assert stored["protocol"] == good and stored["chosen_by"] == "auto"
    ev = stored["evidence"]["protocols"]
    assert ev[good]["strategies"]["vote"]["loo_correct"] == 4
    other = "plain" if good == "chat" else "chat"
    assert ev[other]["strategies"]["rank"]["probe_top_share"] == 1.0  # all "negative"
    anns = store.read_jsonl(RunDir(run_dir).annotations_file)
    assert {a["protocol"] for a in anns} == {good}
    lab = report["labelling"]
    assert lab["protocol"] == good and lab["strategy"] == "rank" and lab["beats_chance"]
    assert "4 of 4 demos right" in lab["reason"]
    recs = store.read_jsonl(run_dir / "dataset" / "train.jsonl")
    assert recs and all(r["label"] == truth("Input: " + r["input"]) for r in recs)


def test_protocol_and_strategy_set_by_hand_are_kept(tmp_path):
    synth = SynthesisConfig(**{**SMALL.__dict__, "label_protocol": "plain"})
    run_dir, report = _synth(tmp_path, ProtocolFake("chat"), synth,
                             FilterConfig(label_strategy="vote", balance=False))
    assert store.read_json(RunDir(run_dir).labelling_file)["protocol"] == "plain"
    assert list(store.read_json(RunDir(run_dir).labelling_file)["evidence"]["protocols"]) == ["plain"]
    assert report["labelling"]["strategy"] == "vote"
    assert report["labelling"]["strategy_chosen_by"] == "user"
    assert report["labelling"]["beats_chance"] is False  # plain gets 2 of 4: chance


def test_no_protocol_beats_chance_labels_with_the_models_own_answers_and_says_so(tmp_path):
    """Nothing beats chance on the demos: every input gets the model's own answer in chat
    form (here always "negative"), unbalanced and without top-up rounds; the one-label
    dataset is a warning at synthesis, and training refuses it by default because the
    demos spread over both labels (issue 39), unless forced."""
    from selfguide.training import trainer as training
    class Clueless(ProtocolFake):
        def _answer(self, prompt, chat):
            if prompt.endswith("Input:"):
                return super()._answer(prompt, chat)
            return "negative"

    synth = SynthesisConfig(**{**SMALL.__dict__, "min_per_label": 50, "topup_rounds": 3})
    run_dir, report = _synth(tmp_path, Clueless("chat"), synth)
    lab = report["labelling"]
    assert lab["strategy"] == "own" and lab["beats_chance"] is False
    assert store.read_json(RunDir(run_dir).labelling_file)["protocol"] == "chat"
    assert "own answer" in lab["reason"] and "no balancing" in lab["reason"]
    (diag,) = [d for d in report["diagnostics"] if d["code"] == "labels_at_chance"]
    assert diag["message"] == lab["reason"]  # said once, not twice
    assert diag["message"].count("bigger model") == 1
    assert not report.get("topup")  # asking for "positive" would not change the answers
    recs = store.read_jsonl(run_dir / "dataset" / "train.jsonl")
    assert len(recs) == report["kept"] > 0 and {r["label"] for r in recs} == {"negative"}
    levels = {d["code"]: d["level"] for d in report["diagnostics"]}
    assert levels["single_label"] == "warning" and "error" not in levels.values()
    with pytest.raises(DatasetError, match="identical"):
        training.check_run_dataset(run_dir, recs)  # the demos spread: refused by default
    assert training.check_run_dataset(run_dir, recs, force=True)["rows"] == len(recs)
    with pytest.raises(DatasetError, match="identical"):
        training.check_dataset(recs, task_type="classification")  # other labels: refused




def test_demos_right_by_luck_but_labels_not_following_the_inputs_use_own_answers(tmp_path):
    gen = LuckyDemos("plain")
    synth = SynthesisConfig(**{**SMALL.__dict__, "rounds": 4})
    run_dir, report = _synth(tmp_path, gen, synth)
    stored = store.read_json(RunDir(run_dir).labelling_file)
    assert stored["protocol"] == "plain" and stored["beats_chance"] is True
    assert stored["evidence"]["answer_protocol"] == "chat"
    anns = store.read_jsonl(RunDir(run_dir).annotations_file)
    assert anns and all(a["protocol"] == "plain" and a["answer_scores"] is not None
                        for a in anns)  # the probe's records too
    lab = report["labelling"]
    assert lab["strategy"] == "own" and lab["beats_chance"] is False
    assert lab["agreement"]["p"] >= choice.AGREEMENT_ALPHA
    assert "not clearly more than" in lab["reason"] and "4 of 4 demos" in lab["reason"]
    assert report["strategies"]["own"]["labels"] == {"positive": report["kept"],
                                                     "negative": 0}
    recs = store.read_jsonl(run_dir / "dataset" / "train.jsonl")
    assert {r["label"] for r in recs} == {"positive"}
    # chosen by hand, rank keeps the plain coin flips (and balancing)
    rep = P.refilter(run_dir, FilterConfig(label_strategy="rank"))
    assert rep["labelling"]["strategy_chosen_by"] == "user"
    counts = {k: v["kept"] for k, v in rep["labels"].items()}
    assert counts["positive"] == counts["negative"] > 0


def test_label_rows_follow_a_runs_choice_own_answers_included(tmp_path):
    """``selfguide label --run``: the run decided on its own inputs that the plain labels do
    not follow them, so the real rows get the model's own (chat) answers too, and the
    table lists them once, as the default."""
    gen = LuckyDemos("plain")
    run_dir, _ = _synth(tmp_path, gen, SynthesisConfig(**{**SMALL.__dict__, "rounds": 4}))
    rows = [{"id": f"r{i}", "input": f"{w} {n}", "outputs": [truth("Input: " + w)]}
            for i, (w, n) in enumerate(zip(POS + NEG, ["film", "plot"] * 5))]
    res = label_rows(TASK, rows, gen, SMALL, FilterConfig(), run_dir=run_dir)
    assert res["choice"].strategy == "own" and res["choice"].run == str(run_dir)
    assert [r["label"] for r in res["rows"]] == ["positive"] * len(rows)
    (own,) = [t for t in res["table"] if t["strategy"] == "own"]
    assert own["protocol"] == "chat" and own["default"] and own["value"] == 0.5
    assert sum(t["default"] for t in res["table"]) == 1
    res = label_rows(TASK, rows, gen, SMALL, FilterConfig(label_strategy="rank"),
                     run_dir=run_dir)  # set by hand: the run's protocol, rank labels
    assert res["choice"].strategy == "rank" and res["choice"].protocol == "plain"


def test_label_command_run_of_another_task_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SELFGUIDE_WORKSPACE", str(tmp_path / "ws"))
    from selfguide.runs.rundir import RunDir as R

    run = R.named("other")
    other = TaskSpec(name="other", instruction="Is it red?", demos=(
        Demo("a red car", "yes"), Demo("the sky", "no")), task_type="classification",
        labels=("yes", "no"), metric="exact_match")
    P.prepare_run(run.path, other, SMALL, FilterConfig())
    task = tmp_path / "t.json"
    task.write_text(json.dumps(TASK.to_dict()))
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"input": "great film", "output": "positive"}\n')
    args = ["label", str(task), "--inputs", str(rows)]  # refused before a model loads
    assert cli.main([*args, "--run", "other"]) == 2
    assert "run of task 'other', not of 'sent'" in capsys.readouterr().err
    assert cli.main([*args, "--run", "missing"]) == 2
    assert "missing" in capsys.readouterr().err


def test_agreement_counts_chance_from_both_label_shares():
    labs = ("a", "b")
    assert agreement(["a"] * 9, ["a"] * 9, labs) is None  # too few rows
    follow = agreement(["a", "b"] * 20, ["a", "b"] * 20, labs)
    assert follow["agree"] == 1.0 and follow["chance"] == 0.5 and follow["p"] < 1e-9
    # one label for everything agrees as often as chance: no credit for it
    const = agreement(["a"] * 40, ["a", "b"] * 20, labs)
    assert const["agree"] == 0.5 and const["chance"] == 0.5 and const["p"] > 0.5
    coin = agreement(["a", "b", "b", "a"] * 10, ["a", "b"] * 20, labs)
    assert coin["agree"] == 0.5 and coin["p"] > 0.4
    assert agreement(["a", ""] * 9, ["a"] * 18, labs) is None  # 9 unlabelled
    assert _binomial_tail(0, 5, 0.3) == 1.0
    assert abs(_binomial_tail(3, 4, 0.5) - 5 / 16) < 1e-12


def test_choose_protocol_takes_the_answer_protocol_when_nothing_beats_chance():
    def strat(correct):
        return {"loo_correct": correct, "probe_top_share": 0.5}

    ev = {"task_type": "classification", "chance": 0.5, "answer_protocol": "chat",
          "protocols": {p: {"demos": 4, "scored": True, "mapped_share": 1.0,
                            "strategies": {s: strat(c) for s in labelling.SELF_STRATEGIES}}
                        for p, c in (("chat", 1), ("plain", 2))}}
    pick = choice.choose_protocol(ev)
    assert pick["protocol"] == "chat" and pick["beats_chance"] is False
    ev["protocols"]["plain"]["strategies"]["rank"] = strat(3)
    assert choice.choose_protocol(ev)["protocol"] == "plain"


def test_vote_is_unusable_when_answers_name_no_label():
    gen = ProtocolFake("plain", stuck=None)
    sampling = labelling.sampling_for(TASK, gen, temperature=0.3)
    ev, _ = labelling.gather_evidence(TASK, gen, ["great film", "dull plot"],
                                      labelling.PROTOCOLS, sampling, 3)
    assert ev["protocols"]["chat"]["mapped_share"] == 0.0
    assert ev["protocols"]["plain"]["mapped_share"] == 1.0
    assert choice.choose_protocol(ev)["protocol"] == "plain"


def test_without_label_scores_only_the_vote_can_be_chosen(tmp_path):
    """score_labels=false (or a server without log-probabilities): nothing is scored, the
    evidence says so, and rank / calibrated are never chosen."""
    gen = ProtocolFake("chat")
    synth = SynthesisConfig(**{**SMALL.__dict__, "score_labels": False})
    run_dir, report = _synth(tmp_path, gen, synth)
    assert None not in gen.calls  # ProtocolFake.score_options was never called
    ev = store.read_json(RunDir(run_dir).labelling_file)["evidence"]["protocols"]
    assert ev["chat"]["scored"] is False and ev["plain"]["scored"] is False
    lab = report["labelling"]
    assert lab["protocol"] == "chat" and lab["strategy"] == "vote" and lab["beats_chance"]
    assert choice.choose_protocol({**store.read_json(RunDir(run_dir).labelling_file)[
        "evidence"]})["strategy"] == "vote"


def test_refilter_resolves_auto_and_a_strategy_override(tmp_path):
    run_dir, _ = _synth(tmp_path, ProtocolFake("chat"))
    rep = P.refilter(run_dir, FilterConfig(label_strategy="calibrated"))
    assert rep["label_strategy"] == "calibrated"
    assert rep["labelling"]["strategy_chosen_by"] == "user"
    rep = P.refilter(run_dir, FilterConfig())
    assert rep["label_strategy"] == "rank" and rep["labelling"]["strategy_chosen_by"] == "auto"
    assert store.read_json(run_dir / "config.json")["filters"]["label_strategy"] == "auto"


def test_legacy_output_chat_runs_still_load(tmp_path):
    run_dir, _ = _synth(tmp_path, ProtocolFake("chat"))
    cfg = store.read_json(run_dir / "config.json")
    del cfg["synthesis"]["label_protocol"], cfg["synthesis"]["probe_inputs"]
    cfg["synthesis"]["output_chat"] = False
    store.atomic_write_json(run_dir / "config.json", cfg)
    assert P.load_run(run_dir)[1].label_protocol == "plain"


def test_label_rows_matches_the_pipeline_rule_and_scores_accuracy():
    rows = [{"id": f"r{i}", "input": f"{w} {n}", "outputs": [truth("Input: " + w)]}
            for i, (w, n) in enumerate(zip(POS + NEG, ["film", "plot"] * 5))]
    synth, filters = preset("quick")
    res = label_rows(TASK, rows, ProtocolFake("chat"), synth, filters)
    assert res["choice"].protocol == "chat"
    default = [t for t in res["table"] if t["default"]]
    assert len(default) == 1 and default[0]["value"] == 1.0
    assert {(t["protocol"], t["strategy"]) for t in res["table"]} == {
        (p, s) for p in ("chat", "plain") for s in ("vote", "rank", "calibrated")} | {
        ("chat", "own")}
    assert res["majority"] == 0.5 and all(r["label"] for r in res["rows"])


def test_label_command_bad_files_are_clear_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SELFGUIDE_WORKSPACE", str(tmp_path / "ws"))
    task = tmp_path / "t.json"
    task.write_text(json.dumps(TASK.to_dict()))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no input column"}\n')
    for inputs, msg in ((tmp_path / "missing.jsonl", "not found"), (bad, "row 1"),
                        (tmp_path, "not found")):
        assert cli.main(["label", str(task), "--inputs", str(inputs)]) == 2
        assert msg in capsys.readouterr().err
    txt = tmp_path / "inputs.txt"
    txt.write_text("great film\n")
    with pytest.raises(DatasetError, match="Unsupported"):
        read_inputs(txt)
    assert not (tmp_path / "ws" / "labels").exists()


@pytest.mark.slow
def test_label_command_embedded_prints_accuracy(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SELFGUIDE_WORKSPACE", str(tmp_path / "ws"))
    out = tmp_path / "labels.jsonl"
    rc = cli.main(["label", "examples/sentiment.json", "--inputs", "examples/sentiment.json",
                   "--limit", "8", "--n-samples", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    acc = [ln for ln in text.splitlines() if ln.startswith("accuracy: ")]
    assert len(acc) == 1 and 0.0 <= float(acc[0].split()[1]) <= 1.0
    rows = store.read_jsonl(out)
    assert len(rows) == 8 and all(r["label"] in ("positive", "negative") for r in rows)


def test_one_demo_gives_no_evidence_and_says_so(tmp_path):
    one = TaskSpec(name="one", instruction=TASK.instruction, demos=TASK.demos[:1],
                   task_type="classification", labels=TASK.labels, metric="exact_match")
    gen = ProtocolFake("chat")
    sampling = labelling.sampling_for(one, gen, temperature=0.3)
    ev, _ = labelling.gather_evidence(one, gen, ["great film", "dull plot", "fun cast"],
                                      labelling.PROTOCOLS, sampling, 3)
    pick = choice.choose_strategy(ev, "chat", {"rank": ["positive", "negative", "positive"]})
    assert pick["beats_chance"] is None and pick["strategy"] in labelling.SELF_STRATEGIES
    assert "Add demos" in pick["reason"]


def test_label_batches_progress_counts_each_input_once_and_never_goes_back(tmp_path):
    """Stage 2 labels in batches, one generate call each; the bar counted each call's
    cumulative progress against the previous call's (seen in `make demo`: annotate 42/79,
    then 25/79). Now every batch gets its own counter: the bar only moves forward."""
    from selfguide.runs.events import EventLog, Progress, read_events
    from selfguide.settings.fields import SamplingConfig

    log = EventLog(tmp_path / "events.jsonl")
    progress = Progress("annotate", 20, events=log, stream=None)
    items = [(f"i{k}", f"great fun film number {k}") for k in range(20)]
    recs = labelling.label_batches(TASK, items, FakeGenerator(script="positive", batch_size=3),
                                   "chat", SamplingConfig(temperature=0.3), 2, batch=8,
                                   seed=lambda first: 0, progress=progress)
    done = [e["done"] for e in read_events(log.path, ("progress",))]
    assert len(recs) == 20 and progress.done == 20
    assert done == sorted(done) and done[-1] == 20 and len(done) == 8  # 8 + 8 + 4 inputs


def test_nothing_usable_keeps_the_target_labels_and_says_why():
    """No label scores (a server without log-probabilities) and answers that name no
    label: no self-label can be used, nor the own answers; each input keeps its target."""
    strategies = {s: {"loo_correct": 3, "probe_top_share": 0.5}
                  for s in labelling.SELF_STRATEGIES}
    ev = {"task_type": "classification", "chance": 0.5, "answer_protocol": "chat",
          "protocols": {"chat": {"demos": 4, "scored": False, "mapped_share": 0.0,
                                 "strategies": strategies}}}
    table = {"vote": [""] * 20, "rank": [""] * 20, "calibrated": [""] * 20,
             "own": [""] * 20, "target": ["positive", "negative"] * 10}
    pick = choice.choose_strategy(ev, "chat", table, TASK.labels)
    assert pick["strategy"] == "target" and pick["beats_chance"] is False
    assert "name no label" in pick["reason"] and "written for" in pick["reason"]


def test_label_command_with_run_follows_the_runs_filters_and_writes_labels(
        tmp_path, capsys, monkeypatch):
    """``selfguide label --run NAME`` (the model replaced by the fake): the run's saved
    label strategy decides unless --label-strategy is given; the labels file is written."""
    from selfguide import backends

    monkeypatch.setenv("SELFGUIDE_WORKSPACE", str(tmp_path / "ws"))
    gen = LuckyDemos("plain")
    monkeypatch.setattr(backends, "get_generator", lambda *a, **k: gen)
    run = RunDir.named("lucky")
    synth = SynthesisConfig(**{**SMALL.__dict__, "rounds": 4})
    P.prepare_run(run.path, TASK, synth, FilterConfig(label_strategy="rank"))
    P.synthesize(run.path, TASK, synth, gen, stream=None)
    task = tmp_path / "t.json"
    task.write_text(json.dumps(TASK.to_dict()))
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"input": f"{w} film", "output": truth("Input: " + w)})
                            + "\n" for w in POS + NEG))
    out = tmp_path / "labels.jsonl"
    args = ["label", str(task), "--inputs", str(rows), "--run", "lucky", "--out", str(out)]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "Label strategy rank was set by hand" in text and "accuracy: " in text
    assert {r["strategy"] for r in store.read_jsonl(out)} == {"rank"}
    assert cli.main([*args, "--label-strategy", "auto"]) == 0
    assert "own answer" in capsys.readouterr().out
    assert {(r["strategy"], r["protocol"]) for r in store.read_jsonl(out)} == {("own", "chat")}


def test_own_on_a_run_without_answer_scores_says_what_to_do(tmp_path):
    """A run synthesized before the answer-form scores were recorded: label strategy own
    keeps nothing, and the report says why and what to do instead of an empty dataset."""
    import pandas as pd

    from selfguide.methods.selfguide.table import load_candidates

    run_dir, _ = _synth(tmp_path, ProtocolFake("chat"))
    df = load_candidates(run_dir).drop(columns=["answer_scores"])
    df.to_parquet(RunDir(run_dir).candidates_file)
    assert "answer_scores" not in pd.read_parquet(RunDir(run_dir).candidates_file)
    with pytest.raises(DatasetError, match="passes the filters") as err:
        P.refilter(run_dir, FilterConfig(label_strategy="own"))
    assert "synthesize the run again" in err.value.hint
    from selfguide.methods.selfguide.filters import apply
    from selfguide.methods.selfguide.report import build_report

    out = apply(df, FilterConfig(label_strategy="own"), TASK)
    rep = build_report(out, TASK, FilterConfig(label_strategy="own"))
    (diag,) = [d for d in rep["diagnostics"] if d["code"] == "own_unavailable"]
    assert diag["level"] == "error" and "synthesize the run again" in diag["message"]


def test_a_light_edit_task_judges_a_protocol_by_its_own_answers():
    """Issue 34: stage 2 counts the unchanged input as a candidate where the demos edit
    lightly, but the leave-one-out evidence that picks the protocol scores the samples' own
    consensus, so a protocol whose answers scatter around the input does not score as
    copying it."""
    from selfguide.evaluation.metrics import rouge_l
    from selfguide.methods.selfguide.relation import task_relation

    light = TaskSpec(name="fix", instruction="Fix the grammar.",
                     demos=(Demo("she go to school every day", "she goes to school every day"),
                            Demo("they was late for the bus", "they were late for the bus"),
                            Demo("he have two cat at home", "he has two cats at home")))
    assert task_relation(light).edits_lightly
    fixes = {d.input: d.output for d in light.demos}

    def asked(prompt):  # the input asked about is the last demo input in the prompt
        return max(fixes, key=prompt.rfind)

    def scatter(prompt, sampling, i):  # the input with one word garbled: never the input
        words = asked(prompt).split()
        words[i % len(words)] = "zz"
        return " ".join(words)

    gen = FakeGenerator(script=scatter)
    sampling = labelling.sampling_for(light, gen, temperature=0.7)
    ev, _ = labelling.protocol_evidence(light, gen, "plain", [], sampling, 4)
    assert not set(ev["loo_answers"]) & set(fixes)   # a sample, not the unchanged input
    copying = sum(rouge_l(x, [y]) for x, y in fixes.items()) / len(fixes)
    assert ev["loo_rouge_l"] < copying
    editing = FakeGenerator(script=lambda p, s, i: fixes[asked(p)])
    ev, _ = labelling.protocol_evidence(light, editing, "plain", [], sampling, 4)
    assert ev["loo_rouge_l"] == 1.0
