"""Issue 36: the user's own unlabeled inputs as a SELF-GUIDE source (reader, mix only/fill,
origin everywhere, held-out rows kept out, resume, CLI) with the scripted fake backend."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
from sgtest.selfguide import NOUNS, TASK, WORDS, reviews, script

from selfguide import cli
from selfguide.backends.fake import FakeGenerator
from selfguide.errors import ConfigError, DatasetError
from selfguide.methods.selfguide import pipeline as P
from selfguide.methods.selfguide import sources
from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
from selfguide.methods.selfguide.report import format_report
from selfguide.runs import store
from selfguide.task.spec import TestExample

SMALL = SynthesisConfig(rounds=2, prompts_per_round=6, n_samples=4, annotate_batch=8,
                        probe_inputs=5)




def stage1_calls(gen: FakeGenerator) -> list:
    return [c for c in gen.calls if c.prompts[0].endswith("Input:")]


# --------------------------------------------------------------------------- reading

def test_reads_every_format_and_picks_the_column(tmp_path):
    texts = reviews(5)
    pd.DataFrame({"id": range(5), "ticket": texts}).to_csv(tmp_path / "a.csv", index=False)
    g = sources.read_given(tmp_path / "a.csv", "ticket")
    assert g.rows == tuple(texts) and g.numbers == (1, 2, 3, 4, 5) and g.column == "ticket"
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"text": t, "n": 1}) + "\n"
                                              for t in texts))
    assert sources.read_given(tmp_path / "b.jsonl").column == "text"  # 'text' preferred
    (tmp_path / "c.txt").write_text(texts[0] + "\n\n" + texts[1] + "\n")
    g = sources.read_given(tmp_path / "c.txt")
    assert g.rows == tuple(texts[:2]) and g.numbers == (1, 3) and g.skipped == 1
    pd.DataFrame({"body": texts}).to_parquet(tmp_path / "d.parquet")
    assert sources.read_given(tmp_path / "d.parquet").rows == tuple(texts)  # only column
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"input": texts, "label": [0] * 5}).save_to_disk(
        str(tmp_path / "hf"))
    hf = sources.read_given(tmp_path / "hf")
    assert hf.rows == tuple(texts) and hf.column == "input" and len(hf.sha256) == 64
    assert sources.read_given(tmp_path / "hf").sha256 == hf.sha256


@pytest.mark.parametrize("name,data,column,match", [
    ("e.csv", b"", None, "is empty"),
    ("w.csv", b"a,b\n1,2\n", "ticket", r"has no column 'ticket'.*"),
    ("m.csv", b"a,b\n1,2\n", None, "none is called 'input'"),
    ("bin.txt", b"\x00\x01\x02abc", None, "binary"),
    ("l1.txt", b"caf\xe9\n", None, r"not UTF-8 \(byte 3\)"),
    ("x.xlsx", b"PK", None, "unsupported type"),
    ("n.jsonl", b'{"input": "a"}\n{oops\n', None, "line 2 is not JSON"),
    ("o.jsonl", b'{"input": {"a": 1}}\n', None, "row 1, column 'input' holds a dict"),
])
def test_bad_files_get_clear_errors(tmp_path, name, data, column, match):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(DatasetError, match=match) as err:
        sources.read_given(tmp_path / name, column)
    assert name in str(err.value)


def test_huge_row_and_missing_file(tmp_path):
    (tmp_path / "h.txt").write_text("short\n" + "x" * (sources.MAX_CHARS + 1) + "\n")
    with pytest.raises(DatasetError, match="row 2.*characters long"):
        sources.read_given(tmp_path / "h.txt")
    with pytest.raises(DatasetError, match="not found"):
        sources.read_given(tmp_path / "nope.csv")
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(DatasetError, match="no non-blank row"):
        sources.read_given(tmp_path / "blank.txt")


# --------------------------------------------------------------------------- pipeline

def _given(tmp_path, texts, name="given.txt"):
    path = tmp_path / name
    path.write_text("\n".join(texts) + "\n")
    return sources.read_given(path)


def _run(run_dir, task, given, mix, cfg=SMALL, gen=None, filters=None):
    gen = gen or FakeGenerator(script=script)
    P.prepare_run(run_dir, task, cfg, filters or FilterConfig(), given=given, mix=mix)
    return P.synthesize(run_dir, task, cfg, gen, stream=None), gen


def test_only_mix_labels_given_inputs_without_stage_one(tmp_path):
    texts = reviews(30)
    texts[3] = "Sure, here is my honest take: the dull plot was awful and boring"  # noise
    task = TASK.__class__(**{**TASK.__dict__, "test": (
        TestExample(input=texts[7], outputs=("positive",)),
        TestExample(input=texts[9].replace("Review", "review") + "!", outputs=("negative",)))})
    run_dir = tmp_path / "only"
    report, gen = _run(run_dir, task, _given(tmp_path, texts), "only")
    assert not stage1_calls(gen)  # the given inputs replace stage 1
    rows = store.read_jsonl(run_dir / "inputs.jsonl")
    assert [r["input"] for r in rows] == texts and {r["origin"] for r in rows} == {"given"}
    assert [json.loads(x)["row"] for x in (run_dir / "given_inputs.jsonl").read_text()
            .splitlines()] == list(range(1, 31))
    df = pd.read_parquet(run_dir / "candidates.parquet")
    assert set(df["origin"]) == {"given"}
    by_id = df.set_index("id")
    # held-out evaluation rows (exact and near) never reach training; own reason
    assert by_id.loc[sources.given_id(8), "drop_reason"] == "held_out"
    assert by_id.loc[sources.given_id(10), "drop_reason"] == "held_out"
    # a given input is not judged by the noise filter meant for generated text
    assert by_id.loc[sources.given_id(4), "f_noise"]
    train = store.read_jsonl(run_dir / "dataset" / "train.jsonl")
    assert train and {r["origin"] for r in train} == {"given"}
    assert not {texts[7], texts[9]} & {r["input"] for r in train}
    assert report["origins"]["given"] == {"candidates": 30, "kept": report["kept"],
                                          "held_out": 2}
    assert report["funnel"][0]["by_origin"] == {"given": 30, "generated": 0}
    assert "By origin: given 30" in format_report(report)
    # asking for it, the generated-text filters judge the given inputs too
    strict = P.refilter(run_dir, FilterConfig(filter_given=True))
    assert strict["drop_reasons"].get("noise") == 1


def test_fill_mix_tops_up_with_generated_inputs_and_resumes(tmp_path):
    cfg = SynthesisConfig(rounds=2, prompts_per_round=6, n_samples=4, annotate_batch=8,
                          probe_inputs=5, min_inputs=16, max_rounds=6, input_prompt="mixed")
    given = _given(tmp_path, reviews(8))
    run_dir = tmp_path / "fill"
    report, gen = _run(run_dir, TASK, given, "fill", cfg)
    rows = store.read_jsonl(run_dir / "inputs.jsonl")
    gen_rows = [r for r in rows if r["origin"] == "generated"]
    assert len([r for r in rows if r["origin"] == "given"]) == 8
    assert gen_rows and len(stage1_calls(gen)) == len({r["round"] for r in gen_rows})
    o = report["origins"]
    assert o["given"]["candidates"] == 8 and o["generated"]["candidates"] == len(gen_rows)
    assert report["funnel"][-1]["by_origin"]["given"] + \
        report["funnel"][-1]["by_origin"]["generated"] == report["funnel"][-1]["remaining"]
    # the given inputs are shown to stage 1 as examples (generation follows the user's
    # data; not in by_label prompts, which list only inputs of the asked-for label)
    assert any(t in p for c in stage1_calls(gen) for p in c.prompts for t in reviews(8))
    again = FakeGenerator(script=script)
    P.prepare_run(run_dir, TASK, cfg, FilterConfig(), given=given, mix="fill")
    P.synthesize(run_dir, TASK, cfg, again, stream=None)
    assert not stage1_calls(again)  # resumed: nothing generated twice
    assert len(store.read_jsonl(run_dir / "inputs.jsonl")) == len(rows)
    # another file (content hash) is another run
    other = _given(tmp_path, reviews(8, seed=1), "other.txt")
    with pytest.raises(ConfigError, match="different task, model or synthesis"):
        P.prepare_run(run_dir, TASK, cfg, FilterConfig(), given=other, mix="fill")
    with pytest.raises(ConfigError, match="needs your inputs"):
        P.prepare_run(tmp_path / "x", TASK, cfg, FilterConfig(), mix="only")


def test_fill_with_enough_given_inputs_generates_nothing(tmp_path):
    cfg = SynthesisConfig(rounds=2, prompts_per_round=6, n_samples=4, annotate_batch=8,
                          probe_inputs=5, min_inputs=10)
    report, gen = _run(tmp_path / "r", TASK, _given(tmp_path, reviews(20)), "fill", cfg)
    assert not stage1_calls(gen) and report["origins"]["generated"]["candidates"] == 0


# --------------------------------------------------------------------------- CLI

@pytest.fixture()
def fake_models(monkeypatch):
    from selfguide import backends

    monkeypatch.setattr(backends, "get_generator", lambda name, **kw: FakeGenerator(script=script))


def test_cli_inputs_csv_to_export(workspace, tmp_path, fake_models, capsys):
    task_file = tmp_path / "sent.json"
    d = TASK.to_dict()
    d["examples"] = d.pop("demos")
    task_file.write_text(json.dumps(d))
    pd.DataFrame({"ticket": reviews(40), "other": 1}).to_csv(tmp_path / "t.csv", index=False)
    rc = cli.main(["synthesize", str(task_file), "--run", "g1", "--rounds", "2",
                   "--prompts-per-round", "4", "--n-samples", "4", "--inputs",
                   str(tmp_path / "t.csv"), "--column", "ticket", "--mix", "only"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "your inputs: 40" in out.err and "By origin: given 40" in out.out
    run_dir = workspace / "runs" / "g1"
    cfg = store.read_json(run_dir / "config.json")
    assert cfg["inputs"]["column"] == "ticket" and cfg["inputs"]["mix"] == "only"
    assert cli.main(["export", "--run", "g1", "--format", "alpaca"]) == 0
    alpaca = json.loads((run_dir / "export" / "alpaca.json").read_text())
    assert alpaca and {r["origin"] for r in alpaca} == {"given"}
    assert "Inputs by origin" in (run_dir / "export" / "README.md").read_text()
    capsys.readouterr()
    rc = cli.main(["synthesize", str(task_file), "--run", "g2", "--inputs",
                   str(tmp_path / "t.csv"), "--column", "nope"])
    err = capsys.readouterr().err
    assert rc == 2 and "has no column 'nope'" in err and "ticket" in err
    assert not (workspace / "runs" / "g2").exists()  # nothing half-written
    assert cli.main(["synthesize", str(task_file), "--run", "g3", "--mix", "only"]) == 2
    assert cli.main(["synthesize", str(task_file), "--run", "g4", "--inputs",
                     str(tmp_path / "t.csv"), "--column", "ticket", "--mix", "only",
                     "--documents", str(tmp_path)]) == 2
    assert "nothing is written" in capsys.readouterr().err


# --------------------------------------------------------------------------- end to end

def _movie_rows(n: int) -> list[str]:
    r = random.Random(5)
    return [f"day {i}: my friends said the {r.choice(NOUNS)} felt "
            f"{r.choice(WORDS['positive'] + WORDS['negative'])} compared to the "
            f"{r.choice(NOUNS)} we saw last week" for i in range(n)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["csv", "hf"])
def test_200_given_rows_through_filter_train_eval(workspace, tmp_path, tiny_model_dir,
                                                  fake_models, capsys, kind):
    """Acceptance: a run from 200 unlabeled rows (CSV, and a saved HF dataset) goes through
    synthesize (mix only), filter, train and eval on the CLI; origins in the report."""
    task = {"name": "sent", "instruction": "is this movie positive or negative",
            "examples": [{"input": "this movie was great", "output": "positive"},
                         {"input": "this film was bad", "output": "negative"},
                         {"input": "this movie was fun", "output": "positive"}],
            "task_type": "classification", "labels": ["positive", "negative"],
            "metric": "exact_match",
            "test": [{"input": "this film was boring", "outputs": ["negative"]},
                     {"input": "this movie was great and fun", "outputs": ["positive"]}]}
    (tmp_path / "task.json").write_text(json.dumps(task))
    texts = _movie_rows(199) + ["this film was boring"]  # one held-out row leaks in
    if kind == "csv":
        src = tmp_path / "rows.csv"
        pd.DataFrame({"review": texts}).to_csv(src, index=False)
    else:
        datasets = pytest.importorskip("datasets")
        src = tmp_path / "rows-hf"
        datasets.DatasetDict({"train": datasets.Dataset.from_dict({"review": texts})}
                             ).save_to_disk(str(src))
    model = ["--model", str(tiny_model_dir), "--precision", "fp32"]
    assert cli.main(["synthesize", str(tmp_path / "task.json"), "--run", "e2e", "--inputs",
                     str(src), "--mix", "only", "--n-samples", "3", *model]) == 0, \
        capsys.readouterr().err
    run_dir = workspace / "runs" / "e2e"
    report = store.read_json(run_dir / "dataset" / "report.json")
    assert report["origins"]["given"]["candidates"] == 200
    assert report["origins"]["given"]["held_out"] == 1 and report["kept"] > 0
    assert cli.main(["filter", "--run", "e2e", "--label-strategy", "vote"]) == 0
    train = store.read_jsonl(run_dir / "dataset" / "train.jsonl")
    assert {r["origin"] for r in train} == {"given"}
    assert "this film was boring" not in {r["input"] for r in train}
    assert cli.main(["train", "--run", "e2e", "--method", "lora", "--precision", "fp32",
                     "--max-steps", "2", "--batch-size", "4", "--grad-accum", "1",
                     "--val-fraction", "0"]) == 0
    assert cli.main(["eval", "--run", "e2e", "--max-new-tokens", "3", "--bootstrap", "20",
                     "--precision", "fp32"]) == 0
    assert len(store.read_jsonl(run_dir / "eval" / "predictions.jsonl")) == 2


def test_run_hands_the_source_options_to_synthesize():
    from selfguide.cli import build_parser
    from selfguide.commands import run as run_cmd

    args = build_parser().parse_args(["run", "t.json", "--inputs", "rows.csv", "--column",
                                      "body", "--mix", "only", "--documents", "a", "b"])
    assert run_cmd.source_argv(args) == ["--inputs", "rows.csv", "--column", "body", "--mix",
                                         "only", "--documents", "a", "b"]
    syn = build_parser().parse_args(["synthesize", "t.json", *run_cmd.source_argv(args)])
    assert (syn.inputs, syn.column, syn.mix, syn.documents) == ("rows.csv", "body", "only",
                                                                ["a", "b"])
    assert run_cmd.source_argv(build_parser().parse_args(["run", "t.json"])) == []


def test_cards_say_where_the_inputs_came_from():
    from selfguide.export import cards

    report = {"candidates": 30, "kept": 20, "train": 20, "val": 0,
              "origins": {"given": {"candidates": 25, "kept": 18, "held_out": 2},
                          "generated": {"candidates": 5, "kept": 2, "held_out": 0}}}
    lines = cards._filter_lines(report)
    assert any("given 25 candidates, 18 kept, 2 dropped as held-out" in x for x in lines)
    assert cards._origin_lines({"candidates": 3}) == []
