"""The method registry and the commands that dispatch through it (filter, export,
synthesize --method) on a Self-Instruct run exactly as on a SELF-GUIDE one."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from sgtest.selfinstruct import fake_script

from selfguide import cli, methods
from selfguide.backends.fake import FakeGenerator
from selfguide.errors import ConfigError
from selfguide.methods import candidates
from selfguide.methods.selfinstruct.config import POOL_FILTER_FIELDS, SelfInstructFilterConfig
from selfguide.runs import store
from selfguide.runs.rundir import RunDir


def test_registry_knows_both_methods():
    assert methods.names() == ("selfguide", "selfinstruct")
    sg, si = methods.get("selfguide"), methods.get("selfinstruct")
    assert (sg.title, sg.stage, si.title, si.stage) == ("SELF-GUIDE", "synthesize",
                                                        "Self-Instruct", "self-instruct")
    assert si.frozen_filters == POOL_FILTER_FIELDS and sg.frozen_filters == ()
    assert si.filter_config is SelfInstructFilterConfig
    assert "quick" in sg.presets and sg.filter_order[0] == "empty"


def test_unknown_method_names_the_known_ones():
    with pytest.raises(ConfigError, match="known methods: selfguide, selfinstruct"):
        methods.get("evol-instruct")


def test_for_run_reads_config_json(tmp_path):
    run = RunDir(tmp_path / "r").mkdir()
    assert methods.for_run(run).name == "selfguide"  # nothing written yet: the default
    run.write_config({"method": "selfinstruct"})
    assert methods.for_run(run.path).name == "selfinstruct"


def test_a_third_method_is_one_registration():
    m = methods.Method(name="dummy", title="Dummy", stage="dummy", command="dummy",
                       synthesis_config=SelfInstructFilterConfig,
                       filter_config=SelfInstructFilterConfig, run=lambda: {},
                       refilter=lambda r, f: {"kept": 0}, load_candidates=lambda r: None,
                       load_settings=lambda r: (None, None), format_report=str)
    try:
        methods.register(m)
        assert methods.get("dummy") is m and "dummy" in methods.names()
        with pytest.raises(Exception, match="Two synthesis methods"):
            methods.register(methods.Method(**{**m.__dict__, "title": "Other"}))
    finally:
        methods._REGISTRY.pop("dummy", None)


def test_selfinstruct_does_not_import_selfguide():
    root = Path(methods.__file__).parent / "selfinstruct"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("selfguide.methods.selfguide"), path


def test_candidates_roundtrip_and_funnel(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"id": ["a", "b", "c"], "samples": [["x"], None, ["y", "z"]],
                       "drop_reason": ["", "empty", "noise"]})
    assert candidates.read(tmp_path) is None
    candidates.write(tmp_path, df)
    back = candidates.read(tmp_path)
    assert back["samples"].tolist() == [["x"], None, ["y", "z"]]
    assert [s["remaining"] for s in candidates.funnel(back, ("empty", "noise"))] == [3, 2, 1]
    assert candidates.write_overrides(tmp_path, {"a": True, "b": None}) == {"a": True}
    assert candidates.read_overrides(tmp_path) == {"a": True}


# --------------------------------------------------------------------------- the CLI

@pytest.fixture()
def si_run(workspace, monkeypatch):
    """A small Self-Instruct run made through ``synthesize --method selfinstruct``."""
    from selfguide import backends

    monkeypatch.setattr(backends, "get_generator",
                        lambda name, **kw: FakeGenerator(script=fake_script))
    argv = ["synthesize", "--method", "selfinstruct", "--run", "si", "--num-instructions", "6",
            "--prompts-per-round", "2"]
    assert cli.main(argv) == 0
    return RunDir.named("si", must_exist=True)


def test_synthesize_method_selfinstruct_is_self_instruct(si_run):
    from selfguide import jobs

    assert si_run.method == "selfinstruct"
    assert jobs.status("si", "self-instruct").state == "finished"
    assert si_run.read_config()["synthesis"]["num_instructions"] == 6
    assert si_run.read_records()


def test_filter_cli_on_a_selfinstruct_run(si_run, capsys):
    before = si_run.read_report()
    n_before = len(si_run.read_records())
    assert cli.main(["filter", "--run", "si", "--max-output-words", "1"]) == 0
    out = capsys.readouterr().out
    assert "instructions accepted:" in out and "training examples:" in out
    recs = si_run.read_records()
    assert recs and len(recs) < n_before
    assert all(len(r["completion"].split()) <= 1 for r in recs)
    report = si_run.read_report()
    assert report["kept"] == len(recs) < before["kept"]
    assert report["instances"]["dropped"].get("output_length")
    assert si_run.saved_filters()["max_output_words"] == 1
    df = candidates.read(si_run)
    assert int(df["kept"].sum()) == len(recs)
    # the run's settings are the start: a second filter keeps max_output_words=1
    assert cli.main(["filter", "--run", "si"]) == 0
    assert len(si_run.read_records()) == len(recs)


def test_filter_cli_refuses_frozen_and_foreign_settings(si_run, capsys):
    capsys.readouterr()
    assert cli.main(["filter", "--run", "si", "--rouge-threshold", "0.5"]) == 2
    assert "rouge_threshold after generation" in capsys.readouterr().err
    assert cli.main(["filter", "--run", "si", "--min-frequency", "0.3"]) == 2
    assert "Self-Instruct has no setting --min-frequency" in capsys.readouterr().err


def test_filter_honours_overrides_on_a_selfinstruct_run(si_run):
    rid = si_run.read_records()[0]["id"]
    si_run.write_overrides({rid: False})
    assert cli.main(["filter", "--run", "si"]) == 0
    assert rid not in {r["id"] for r in si_run.read_records()}


def test_export_alpaca_of_a_selfinstruct_run(si_run, capsys):
    assert cli.main(["export", "--run", "si", "--format", "alpaca"]) == 0
    rows = json.loads((si_run.export_dir / "alpaca.json").read_text())
    df = candidates.read(si_run).set_index("id")
    recs = si_run.read_records()
    assert len(rows) == len(recs)
    assert [r["instruction"] for r in rows] == [df.loc[r["id"], "instruction"] for r in recs]
    assert cli.main(["export", "--run", "si", "--format", "messages"]) == 0


def test_selfguide_synthesize_refuses_selfinstruct_options(workspace, capsys):
    task = Path(__file__).resolve().parents[2] / "examples" / "sentiment.json"
    assert cli.main(["synthesize", str(task), "--run", "x", "--num-instructions", "3"]) == 2
    assert "SELF-GUIDE has no setting --num-instructions" in capsys.readouterr().err
    assert not store.resolve_run_dir("x").exists()
