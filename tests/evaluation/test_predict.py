"""Evaluation: scoring with scripted generators, test files, adapter refusal, and the real
train -> eval -> compare -> merge CLI loop on the tiny model (before != after)."""

from __future__ import annotations

import json
import os

import pytest
from sgtest.training import make_run

from selfguide import cli
from selfguide.backends.fake import FakeGenerator
from selfguide.errors import AdapterMismatch, DatasetError, ModelError
from selfguide.evaluation import predict as evaluation
from selfguide.models import adapters
from selfguide.runs import store
from selfguide.runs.rundir import RunDir
from selfguide.settings.evaluation import EvalConfig


def _label(prompt: str, sampling, i: int) -> str:
    last = prompt.rsplit("Input:", 1)[-1]
    return "negative\nbecause" if ("boring" in last or "cat" in last) else "Positive."


def test_evaluate_with_scripted_generators(workspace, tmp_path):
    run = make_run(workspace, tmp_path / "no-model", n=2)
    before, after = FakeGenerator(script="positive"), FakeGenerator(script=_label)
    s = evaluation.evaluate(run, EvalConfig(bootstrap=200),
                            generators=(before, after, True))
    assert after.calls[0].chat is True and after.calls[0].sampling.greedy
    assert before.calls[0].prompts == after.calls[0].prompts  # the same prompt for both
    assert "Input: this film was boring" in after.calls[0].prompts[0]
    assert s["metric"] == "exact_match" and s["n"] == 3
    assert s["before"] == pytest.approx(1 / 3) and s["after"] == 1.0
    assert s["difference"]["delta"] == pytest.approx(2 / 3)
    assert s["per_label_after"] == {"positive": 1.0, "negative": 1.0}
    rows = store.read_jsonl(run / "eval" / "predictions.jsonl")
    assert [r["id"] for r in rows] == ["t1", "t2", "t3"]
    assert rows[0]["before"] == "positive" and rows[0]["after"] == "negative"
    assert rows[0]["changed"] and not rows[1]["changed"]
    assert rows[0]["reference"] == "negative" and rows[0]["score_after"] == 1.0
    saved = json.loads((run / "eval" / "metrics.json").read_text())
    assert saved["after"] == 1.0 and "scores_after" not in saved


def test_constrained_eval_answers_with_the_likeliest_label(workspace, tmp_path):
    run = make_run(workspace, tmp_path / "no-model", n=2)
    # before always prefers "positive"; after prefers "negative" on boring/cat inputs
    before = FakeGenerator(scores=lambda p, o: 0.0 if o == "positive" else -1.0)
    after = FakeGenerator(scores=lambda p, o: (
        0.0 if (o == "negative") == any(w in p.rsplit("Input:", 1)[-1] for w in ("boring", "cat"))
        else -1.0))
    s = evaluation.evaluate(run, EvalConfig(bootstrap=50, constrained=True),
                            generators=(before, after, True))
    assert [c.method for c in after.calls] == ["score_options"]  # nothing generated
    assert after.calls[0].options == ["positive", "negative"]
    assert s["before"] == pytest.approx(1 / 3) and s["after"] == 1.0
    rows = store.read_jsonl(run / "eval" / "predictions.jsonl")
    assert [r["after"] for r in rows] == ["negative", "positive", "negative"]
    assert s["config"]["constrained"] is True


def test_constrained_eval_scores_the_tuned_labels_as_trained(workspace, tmp_path):
    """Training wrote each label after a space (train metrics ``completion_prefix``): the
    tuned model's labels are scored in that form, the base model's bare; answers stay bare."""
    run = make_run(workspace, tmp_path / "no-model", n=2)
    store.atomic_write_json(RunDir(run).train_metrics_file, {"completion_prefix": " "})
    before = FakeGenerator(scores=lambda p, o: 0.0 if o == "positive" else -1.0)
    after = FakeGenerator(scores=lambda p, o: 0.0 if o == " negative" else -1.0)
    s = evaluation.evaluate(run, EvalConfig(bootstrap=50, constrained=True),
                            generators=(before, after, True))
    assert before.calls[0].options == ["positive", "negative"]
    assert after.calls[0].options == [" positive", " negative"]
    rows = store.read_jsonl(run / "eval" / "predictions.jsonl")
    assert {r["after"] for r in rows} == {"negative"} and s["after"] == pytest.approx(2 / 3)


def test_eval_test_files_and_limit(workspace, tmp_path):
    run = make_run(workspace, tmp_path / "no-model", n=2)
    jl = tmp_path / "t.jsonl"
    jl.write_text("".join(json.dumps({"input": f"film {i} was boring", "output": "negative"})
                          + "\n" for i in range(10)))
    s = evaluation.evaluate(run, EvalConfig(limit=4, before=False),
                            test_file=jl, generators=(None, FakeGenerator(script=_label), False))
    assert s["n"] == 4 and s["after"] == 1.0 and "before" not in s
    ids = [r["id"] for r in store.read_jsonl(run / "eval" / "predictions.jsonl")]
    assert ids == sorted(ids, key=lambda x: int(x.split("-")[1]))  # seeded sample, in order
    csv = tmp_path / "t.csv"
    csv.write_text("input,output\nthe cat sat,negative\n")
    assert evaluation.load_test_file(csv) == [{"id": "test-1", "input": "the cat sat",
                                               "outputs": ["negative"]}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"input": "x"}) + "\n")
    with pytest.raises(DatasetError, match="row 1"):
        evaluation.load_test_file(bad)
    with pytest.raises(DatasetError, match="not found"):
        evaluation.load_test_file(tmp_path / "missing.jsonl")


def test_niv2_instances_as_test_file(niv2_dir):
    rows = evaluation.load_test_file(niv2_dir / "task1529.json")
    assert len(rows) == 600 and rows[0]["id"] == "task1529-0"
    assert rows[0]["outputs"] == ["neutral"]
    assert evaluation.select_examples(rows, 5, 0) == evaluation.select_examples(rows, 5, 0)


def test_adapter_outside_workspace_and_mismatch_refused(workspace, tmp_path):
    run = make_run(workspace, tmp_path / "no-model", n=2)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (run / "train").mkdir()
    os.symlink(outside, run / "train" / "adapter")
    with pytest.raises(ModelError, match="outside the workspace"):
        adapters.adapter_dir_of(run)
    with pytest.raises(AdapterMismatch):
        adapters.check_fingerprint({"base_fingerprint": "aaaa", "model": "x"}, "bbbb")
    adapters.check_fingerprint({"base_fingerprint": "aaaa"}, "aaaa")


@pytest.mark.slow
def test_cli_train_eval_compare_merge_tiny(workspace, tiny_model_dir, tmp_path, capsys):
    make_run(workspace, tiny_model_dir, "cli", n=24)
    assert cli.main(["train", "--run", "cli", "--method", "lora", "--precision", "fp32",
                     "--epochs", "6", "--learning-rate", "0.05", "--batch-size", "4",
                     "--grad-accum", "1", "--val-fraction", "0"]) == 0
    status = json.loads((workspace / "runs/cli/jobs/train/status.json").read_text())
    assert status["state"] == "finished"
    assert cli.main(["eval", "--run", "cli", "--max-new-tokens", "3", "--bootstrap", "50",
                     "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "before" in out and "cli" in out
    rows = store.read_jsonl(workspace / "runs/cli/eval/predictions.jsonl")
    assert len(rows) == 3
    # "before" is really the base model: the trained adapter changes the answers
    assert any(r["before"] != r["after"] for r in rows)
    assert cli.main(["compare", "cli"]) == 0
    assert "exact_match" in capsys.readouterr().out
    # label-constrained: the base (adapter off) and the tuned model score the labels
    assert cli.main(["eval", "--run", "cli", "--constrained", "true", "--bootstrap", "50",
                     "--precision", "fp32"]) == 0
    capsys.readouterr()
    rows = store.read_jsonl(workspace / "runs/cli/eval/predictions.jsonl")
    assert {r["after"] for r in rows} <= {"positive", "negative"}
    assert {r["before"] for r in rows} <= {"positive", "negative"}

    # a mismatched base fingerprint is refused
    man_path = workspace / "runs/cli/train/adapter/selfguide_adapter.json"
    man = json.loads(man_path.read_text())
    man_path.write_text(json.dumps({**man, "base_fingerprint": "0" * 24}))
    assert cli.main(["eval", "--run", "cli"]) == 2
    assert "different base model" in capsys.readouterr().err
    man_path.write_text(json.dumps(man))

    merged = tmp_path / "merged"
    assert cli.main(["merge", "--run", "cli", "--out", str(merged)]) == 0
    assert (merged / "model.safetensors").is_file() and (merged / "config.json").is_file()
    card = (merged / "README.md").read_text()  # a model card from the run's eval/metrics.json
    assert card.startswith("---\n") and "model.safetensors" in card
    assert "lenient EM (paper)" in card and "Not evaluated yet" not in card
    from safetensors.torch import load_file

    base = load_file(str(tiny_model_dir / "model.safetensors"))
    new = load_file(str(merged / "model.safetensors"))
    k = next(k for k in base if "q_proj" in k)
    assert (base[k].float() - new[k].float()).abs().max() > 0  # the update was merged in
    assert cli.main(["merge", "--run", "cli", "--out", str(merged)]) == 2  # not empty


@pytest.mark.slow
def test_run_command_chains_stages(workspace, tiny_model_dir, monkeypatch, capsys):
    """``selfguide run`` = synthesize (scripted here) -> train -> eval -> final table."""
    import selfguide.commands.synthesize as synth

    seen = {}

    def fake_synthesize(args):
        seen["argv"] = (args.task, args.run, args.preset)
        make_run(workspace, tiny_model_dir, args.run, n=16)
        return 0

    monkeypatch.setattr(synth, "run", fake_synthesize)
    assert cli.main(["run", "task.json", "--run", "chain", "--preset", "quick"]) == 0
    assert seen["argv"] == ("task.json", "chain", "quick")
    run = workspace / "runs" / "chain"
    assert (run / "train/adapter/adapter_model.safetensors").is_file()
    train_cfg = json.loads((run / "train/train_config.json").read_text())["train"]
    assert train_cfg["epochs"] == 3.0  # the quick preset
    m = json.loads((run / "eval/metrics.json").read_text())
    assert m["n"] == 3 and "before" in m
    out = capsys.readouterr().out
    assert "chain" in out and "exact_match" in out and "label" in out


def test_one_answer_warning_when_the_tuned_model_answers_one_label(workspace, tmp_path):
    # the tuned model says "negative" to all 12 inputs, the base model did not: a warning
    # in metrics.json (and from it the CLI and the Compare page), from predictions alone
    run = make_run(workspace, tmp_path / "no-model", n=2)
    jl = tmp_path / "held.jsonl"
    jl.write_text("".join(json.dumps({"input": f"review number {i}", "output":
                                      "positive" if i % 2 else "negative"}) + "\n"
                          for i in range(12)))
    before = FakeGenerator(script=lambda p, s, i: "positive" if "1" in p[-12:] else "negative")
    s = evaluation.evaluate(run, EvalConfig(bootstrap=50), test_file=jl,
                            generators=(before, FakeGenerator(script="negative"), True))
    (warning,) = s["warnings"]
    assert "answers \u201cnegative\u201d to 12 of 12 held-out inputs" in warning
    assert "the base model: " in warning and "Filter page" in warning
    assert s["train_labels"] == {"positive": 1, "negative": 1}  # make_run's two rows
    assert "(1 \u201cnegative\u201d, 1 \u201cpositive\u201d)" in warning
    assert "learned a default answer" in warning
    saved = json.loads((run / "eval" / "metrics.json").read_text())
    assert saved["warnings"] == [warning]
    # a model that answers like the base, or a mixed one, gets no warning
    s = evaluation.evaluate(run, EvalConfig(bootstrap=50), test_file=jl,
                            generators=(before, before, True))
    assert s["warnings"] == []


def test_one_answer_warning_is_pure_and_quiet_on_small_or_collapsed_bases():
    from selfguide.evaluation.compare import one_answer_warning

    m = {"n": 100, "predicted_labels_after": {"yes": 0, "no": 100, "(other)": 0},
         "predicted_labels_before": {"yes": 59, "no": 41, "(other)": 0}}
    w = one_answer_warning(m, {"yes": 49, "no": 49})
    assert w.startswith("The tuned model answers \u201cno\u201d to 100 of 100")
    assert "(49 \u201cno\u201d, 49 \u201cyes\u201d)" in w
    own = one_answer_warning(m, {"no": 98, "yes": 2})
    assert "default answer" not in own
    assert "So were its training rows (98 \u201cno\u201d, 2 \u201cyes\u201d)" in own
    assert "answer format, not the task" in own
    assert one_answer_warning({**m, "predicted_labels_before": {"no": 95}}, None) is None
    assert one_answer_warning({**m, "n": 5}, None) is None
    assert one_answer_warning({**m, "predicted_labels_after": {"yes": 20, "no": 80}}) is None
