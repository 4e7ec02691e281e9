"""Row repairs (issue 15 groundwork): a corrected output/label per candidate in
overrides.json, honoured when either method rebuilds its dataset; the raw candidates and
the old ``{id: bool}`` files are untouched."""

from __future__ import annotations

import json

import pytest
from sgtest.selfguide import TASK, _run, script

from selfguide import cli
from selfguide.backends.fake import FakeGenerator
from selfguide.errors import DatasetError
from selfguide.methods import candidates
from selfguide.methods.selfguide import pipeline as P
from selfguide.runs.rundir import RunDir


def test_old_boolean_files_still_read_and_repairs_keep_decisions(tmp_path):
    run = RunDir(tmp_path)
    run.overrides_file.write_text(json.dumps({"a": True, "b": False, "c": "false"}))
    assert run.read_overrides() == {"a": True, "b": False} and run.read_repairs() == {}
    fix = run.write_repair("a", original={"output": "old"}, output="new", by="ana")
    assert fix["output"] == "new" and fix["original"] == {"output": "old"} and fix["by"] == "ana"
    assert fix["at"].endswith("+00:00")
    assert run.read_overrides() == {"a": True, "b": False}
    # a second repair keeps the first original; saving decisions keeps the repairs
    run.write_repair("a", original={"output": "new"}, output="newer")
    assert run.read_repairs()["a"]["original"] == {"output": "old"}
    assert run.write_overrides({"b": True}) == {"b": True}
    assert run.read_overrides() == {"b": True} and run.read_repairs()["a"]["output"] == "newer"
    raw = json.loads(run.overrides_file.read_text())
    assert raw["b"] is True and "keep" not in raw["a"]  # decision-only entries stay booleans
    run.write_repair("a", original={})  # undo
    assert run.read_repairs() == {} and json.loads(run.overrides_file.read_text()) == {"b": True}


def test_selfguide_dataset_takes_a_repaired_label(tmp_path):
    run_dir = tmp_path / "r"
    _run(run_dir, FakeGenerator(script=script))
    inputs_before = RunDir(run_dir).inputs_file.read_bytes()
    df = P.load_candidates(run_dir)
    rec = RunDir(run_dir).read_records()[0]
    other = next(lab for lab in TASK.labels if lab != rec["label"])
    with pytest.raises(DatasetError, match="not one of the labels"):
        candidates.repair(run_dir, df, rec["id"], label="maybe")
    fix = candidates.repair(run_dir, df, rec["id"], label=other.upper(), by="test")
    assert fix["label"] == other and fix["original"]["label"] == rec["label"]
    P.refilter(run_dir)
    got = {r["id"]: r for r in RunDir(run_dir).read_records("train")
           + RunDir(run_dir).read_records("val")}[rec["id"]]
    assert got["label"] == got["completion"] == got["output"] == other
    after = P.load_candidates(run_dir).set_index("id")
    assert after.loc[rec["id"], "label"] == rec["label"]  # the table keeps the generated one
    assert RunDir(run_dir).inputs_file.read_bytes() == inputs_before


def test_selfinstruct_filter_takes_a_repaired_output(workspace, monkeypatch):
    from sgtest.selfinstruct import fake_script

    from selfguide import backends

    monkeypatch.setattr(backends, "get_generator",
                        lambda name, **kw: FakeGenerator(script=fake_script))
    assert cli.main(["self-instruct", "--run", "si", "--num-instructions", "6",
                     "--prompts-per-round", "2"]) == 0
    run = RunDir.named("si", must_exist=True)
    rounds_before = run.rounds_file.read_bytes()
    rec = run.read_records()[0]
    candidates.repair(run, candidates.read(run), rec["id"], output="a better answer")
    assert cli.main(["filter", "--run", "si"]) == 0
    got = {r["id"]: r for r in run.read_records()}[rec["id"]]
    assert got["completion"] == got["output"] == "a better answer"
    assert candidates.read(run).set_index("id").loc[rec["id"], "output"] == rec["output"]
    assert run.rounds_file.read_bytes() == rounds_before
