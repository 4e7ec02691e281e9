"""The studio's pure helpers: argv building (round trip through the real CLI parser),
JSONL tailing, word diffs, override bookkeeping, run export/delete."""

from __future__ import annotations

import json
import zipfile

import pandas as pd
import pytest

from selfguide.cli import build_parser
from selfguide.errors import JobError
from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
from selfguide.runs import store
from selfguide.runs import workspace as sgworkspace
from selfguide.settings import cli as cliargs
from selfguide.settings.evaluation import EvalConfig
from selfguide.settings.fields import ModelConfig, from_dict, overrides_from_args
from selfguide.settings.training import TrainConfig
from studio.app import diffs
from studio.app import jobs as sjobs
from studio.views import filter_rows as filtering
from studio.views import synthesize_previews as previews


@pytest.mark.parametrize("stage, cls, values", [
    ("train", TrainConfig, {"max_steps": 6, "batch_size": 4, "select_best": False,
                            "target_modules": "q_proj,v_proj", "learning_rate": 1e-4}),
    ("eval", EvalConfig, {"limit": 8, "before": False, "precision": "fp32"}),
    ("filter", FilterConfig, {"min_frequency": 0.45, "balance": False,
                              "noise_terms": ("input:", "as an ai")}),
])
def test_config_argv_round_trips_through_the_cli(stage, cls, values):
    cfg = from_dict(cls, values)
    argv = [stage, "--run", "r1", *cliargs.config_argv(cfg)]
    args = build_parser().parse_args(argv)
    assert from_dict(cls, overrides_from_args(args, cls)) == cfg


def test_synthesize_argv_carries_every_field_and_the_model():
    cfg = from_dict(SynthesisConfig, {"rounds": 1, "n_samples": 2})
    model = ModelConfig(model="/models/x", precision="fp32")
    argv = ["synthesize", "task.json", "--run", "r1", *cliargs.config_argv(cfg, every=True),
            *cliargs.config_argv(model)]
    args = build_parser().parse_args(argv)
    # every=True: the command's preset cannot override what the page shows
    assert from_dict(SynthesisConfig, overrides_from_args(args, SynthesisConfig)) == cfg
    assert from_dict(ModelConfig, overrides_from_args(args, ModelConfig)) == model


def test_progress_view_and_loss_points():
    evs = [{"type": "loss", "step": 1, "loss": 2.0}, {"type": "eval", "step": 1,
                                                      "eval_loss": 2.5},
           {"type": "progress", "stage": "train", "done": 3, "total": 4, "eta": 65,
            "tokens_per_s": 120.0, "elapsed": 5}]
    view = sjobs.progress_view(None, evs)
    assert view["fraction"] == 0.75
    assert "3/4" in view["text"] and "120.0 tokens/s" in view["text"] and "1:05" in view["text"]
    assert sjobs.loss_points(evs) == [{"step": 1, "loss": 2.0, "kind": "train"},
                                      {"step": 1, "loss": 2.5, "kind": "validation"}]


def test_tail_jsonl_skips_a_torn_last_line(tmp_path):
    p = tmp_path / "inputs.jsonl"
    recs = [{"id": f"r{i}", "input": "x" * (i % 7)} for i in range(500)]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"id": "torn", "inp')
    tail = previews.tail_jsonl(p, 50, chunk=256)
    assert [r["id"] for r in tail] == [f"r{i}" for i in range(450, 500)]
    assert previews.count_rows(p) == 500
    assert previews.tail_jsonl(tmp_path / "missing.jsonl") == []


def test_word_diff_keeps_text_as_text():
    xss = "<img src=x onerror=alert(1)>"
    rows = diffs.word_diff("the answer is negative", f"the answer is {xss}")
    assert rows[0] == {"change": "same", "before": "the answer is", "after": "the answer is"}
    assert rows[1] == {"change": "replaced", "before": "negative", "after": xss}
    assert diffs.word_diff("", "new words") == [{"change": "added", "before": "",
                                                 "after": "new words"}]


def test_examples_status_and_views():
    rows = [{"id": "a", "score_before": 0, "score_after": 1, "changed": True},
            {"id": "b", "score_before": 1, "score_after": 0, "changed": True},
            {"id": "c", "score_before": 0.5, "score_after": 0.5, "changed": True},
            {"id": "d", "score_before": 1, "score_after": 1, "changed": False}]
    df = diffs.examples_frame(rows)
    assert df["status"].tolist() == ["improved", "regressed", "changed", "same"]
    assert diffs.select(df, "changed")["id"].tolist() == ["a", "b", "c"]
    assert diffs.select(df, "improved")["id"].tolist() == ["a"]


def test_decisions_changed_and_overrides_file(tmp_path):
    view = pd.DataFrame({"id": ["a", "b", "c"], "decision": ["auto", "keep", "drop"]})
    edited = view.assign(decision=["drop", "auto", "drop"])
    changed = filtering.decisions_changed(view, edited)
    assert changed == {"a": False, "b": None}
    saved = filtering.write_overrides(tmp_path, {"b": True, "c": False, **changed})
    assert saved == {"a": False, "c": False}
    assert filtering.read_overrides(tmp_path) == {"a": False, "c": False}


def test_export_zip_and_delete_guard(workspace):
    d = store.resolve_run_dir("r1", create=True)
    store.atomic_write_json(d / "task.json", {"name": "t"})
    store.atomic_write_text(d / "dataset" / "train.jsonl", '{"id": 1}\n')
    (d / "train" / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (d / "train" / "checkpoints" / "checkpoint-1" / "big.bin").write_bytes(b"x" * 100)
    import io

    names = zipfile.ZipFile(io.BytesIO(sgworkspace.export_zip("r1"))).namelist()
    assert "r1/task.json" in names and "r1/dataset/train.jsonl" in names
    assert not any("checkpoints" in n for n in names)
    # A running job blocks deletion.
    jdir = d / "jobs" / "train"
    jdir.mkdir(parents=True)
    import os
    import time

    store.atomic_write_json(jdir / "status.json", {
        "state": "running", "pid": os.getpid(), "heartbeat": time.time(),
        "heartbeat_interval": 2.0})
    with pytest.raises(JobError):
        sgworkspace.delete_run("r1")
    store.atomic_write_json(jdir / "status.json", {"state": "finished"})
    sgworkspace.delete_run("r1")
    assert store.list_runs() == []


def test_topup_message_says_what_the_topup_rounds_did():
    assert filtering.topup_message(None) == ""
    msg = filtering.topup_message([
        {"round": 6, "asked_for": {"sports": 2}, "after": {"sports": 5, "business": 34}},
        {"round": 7, "asked_for": {"sports": 5}, "after": {"sports": 11, "business": 35}}])
    assert "labelled sports" in msg and "2 rounds" in msg and "sports 2 → 11" in msg
    assert msg.endswith("Balancing cuts every label to the rarest one's count.")
    own = filtering.topup_message([{"round": 6, "asked_for": {"sports": 2},
                                    "after": {"sports": 5}}], "own")
    assert "not balanced" in own and "Balancing cuts" not in own
