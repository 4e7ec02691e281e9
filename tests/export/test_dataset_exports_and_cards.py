"""Dataset exports (every format round-trips to the training records, the chat formats
render to the prompt the run trains on) and the dataset / model cards generated from a
run's files."""

from __future__ import annotations

import json

import pytest
from sgtest.exports import _fake_eval, _report  # noqa: F401
from sgtest.training import make_run

from selfguide import cli
from selfguide.export import cards
from selfguide.runs import store
from selfguide.runs.dataset import EXPORT_FORMATS, EXPORT_NAMES, export, load_records


def _as_records(fmt: str, rows: list[dict]) -> list[tuple[str, str]]:
    """(prompt, completion) pairs read back from an export's rows."""
    if fmt in ("jsonl",) or fmt == "hf-dataset":
        return [(r["prompt"], r["completion"]) for r in rows]
    if fmt == "prompt-completion":
        return [(r["prompt"][0]["content"], r["completion"][0]["content"]) for r in rows]
    if fmt == "messages":
        return [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows]
    if fmt == "sharegpt":
        turns = [r["conversations"] for r in rows]
        assert all([t["from"] for t in ts] == ["human", "gpt"] for ts in turns)
        return [(ts[0]["value"], ts[1]["value"]) for ts in turns]
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_export_format_round_trips(workspace, tmp_path, fmt):
    run = make_run(workspace, tmp_path / "no-model", n=6)
    _report(run)
    path = export(run, fmt)
    assert path == run / "export" / EXPORT_NAMES[fmt]
    recs = load_records(run)
    if fmt == "hf-dataset":
        from datasets import load_from_disk

        rows = list(load_from_disk(str(path)))
    else:
        from datasets import load_dataset

        rows = list(load_dataset("json", data_files=str(path), split="train"))
    if fmt == "alpaca":
        task = json.loads((run / "task.json").read_text())
        assert all(r["instruction"] == task["instruction"] for r in rows)
        assert [(r["input"], r["output"]) for r in rows] == [
            (r["input"], r["completion"]) for r in recs]
    else:
        assert _as_records(fmt, rows) == [(r["prompt"], r["completion"]) for r in recs]
    card = (path if fmt == "hf-dataset" else path.parent) / "README.md"
    assert card.is_file() and cards.MARKER in card.read_text()


def test_chat_exports_render_to_the_training_prompt(workspace, tmp_path, tiny_model_dir):
    """TRL's own chat-template step turns the exported rows into the exact text the run
    trains on (``render_prompt`` + completion)."""
    from transformers import AutoTokenizer
    from trl.data_utils import apply_chat_template

    from selfguide.backends.rendering import render_prompt

    run = make_run(workspace, tiny_model_dir, n=4)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rec = load_records(run)[0]
    want = render_prompt(tok, rec["prompt"], True)
    pc = store.read_jsonl(export(run, "prompt-completion"))[0]
    out = apply_chat_template(pc, tok)
    assert out["prompt"] == want
    assert out["completion"].strip().startswith(rec["completion"])
    msgs = store.read_jsonl(export(run, "messages"))[0]["messages"]
    assert tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True) == want


def test_dataset_card_is_generated_from_the_run_files(workspace, tmp_path):
    from huggingface_hub import DatasetCard

    run = make_run(workspace, tmp_path / "no-model", n=6)
    _report(run, kept=6)
    _fake_eval(run, after=0.75, before=0.25)
    path = export(run, "messages")
    card = DatasetCard.load(path.parent / "README.md")
    assert card.data.task_categories == ["text-generation"]
    assert card.data.size_categories == "n<1K"
    assert card.data.configs[0]["data_files"][0]["path"] == "messages.jsonl"
    assert "17 candidates generated, 6 kept" in card.text
    assert "| exact match (task metric) | 25.0 | 75.0 | +50.0 | [+10.0, +90.0] |" in card.text
    assert "lenient EM (paper) | 50.0 | 100.0" in card.text
    assert "is this movie positive or negative" in card.text
    # the numbers follow the files, never typed in
    _fake_eval(run, after=0.5, before=0.5)
    export(run, "messages")
    text = (path.parent / "README.md").read_text()
    assert "| exact match (task metric) | 50.0 | 50.0 | +0.0 |" in text
    # a README the user wrote is left alone
    (path.parent / "README.md").write_text("my notes")
    export(run, "jsonl")
    assert (path.parent / "README.md").read_text() == "my notes"


def test_card_without_evaluation_says_so(workspace, tmp_path):
    run = make_run(workspace, tmp_path / "no-model", n=4)
    facts = cards.run_facts(run)
    assert facts["eval"] is None and facts["report"] is None
    text = cards.model_card(facts)
    assert "Not evaluated yet" in text and "No dataset report" in text
    assert "license: unknown" in text


def test_base_model_licence_comes_from_the_model(tmp_path, tiny_model_dir):
    assert cards.base_model_info("embedded")["license"] == "apache-2.0"  # GGUF metadata
    assert cards.base_model_info("embedded")["hub_id"] == cards.EMBEDDED_HUB_ID
    import shutil

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    (d / "README.md").write_text("---\nlicense: mit\n---\n# tiny\n")
    assert cards.base_model_info(str(d)) == {"ref": str(d), "hub_id": None, "license": "mit"}


def test_cli_export_chat_formats(workspace, tmp_path, capsys):
    run = make_run(workspace, tmp_path / "no-model", "c", n=4)
    for fmt in ("prompt-completion", "messages", "sharegpt"):
        assert cli.main(["export", "--run", "c", "--format", fmt]) == 0
        assert "exported 4 records" in capsys.readouterr().out
        assert len(store.read_jsonl(run / "export" / EXPORT_NAMES[fmt])) == 4
