"""Issue 38, damaged run files: every run file is read through one typed schema
(``selfguide.runs.schema``); a file that is unparseable, a JSON list where an object
belongs, or has a field of the wrong type fails every command that reads it with exit 2
and a message naming the run, the file, the field and the fix, with no traceback, and
every other file of the run byte-identical afterwards. Whole-file JSONL is read strictly
(row counts checked against the run's record); a stage checks before it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runfiles import _main, make_run, snapshot  # tests/reliability/runfiles.py

from selfguide.errors import RunFileError
from selfguide.runs import schema
from selfguide.runs.rundir import RunDir

# (file, a field of the wrong type, the commands that read the file)
OUT = "/nonexistent-out-dir/x"
COMMANDS = {
    "runs": ["runs"], "filter": ["filter", "--run", "r1"], "export": ["export", "--run", "r1"],
    "train": ["train", "--run", "r1"], "eval": ["eval", "--run", "r1"],
    "compare": ["compare", "r1"], "export-model": ["export-model", "--run", "r1", "--out", OUT],
}
CASES = [
    ("config.json", {"method": "selfguide", "model": "tiny"}, "model",
     ["runs", "filter", "export", "train", "eval", "export-model"]),
    ("manifest.json", {"stages": {"train": "done"}}, "stages.train",
     ["runs", "filter", "export", "train", "eval", "export-model"]),
    ("task.json", None, None, ["filter", "export", "train", "eval", "export-model"]),
    ("labelling.json", {"protocol": 3}, "protocol", ["filter"]),
    ("overrides.json", None, None, ["filter"]),
    ("dataset/report.json", {"train": "3"}, "train",
     ["runs", "export", "train", "eval", "export-model"]),
    ("train/train_config.json", {"data": 5}, "data", ["train"]),
    ("train/metrics.json", {"rows": [3]}, "rows", ["compare", "eval", "export-model"]),
    ("eval/metrics.json", {"n": "2"}, "n", ["compare", "export-model", "runs"]),
    ("train/adapter/selfguide_adapter.json", {"kind": 1}, "kind", ["eval", "export-model"]),
    ("train/adapter/adapter_config.json", {"r": "4"}, "r", ["eval", "export-model"]),
]
VARIANTS = {"list": ("[1, 2]", "holds a list, not an object"),
            "unparseable": ('{"a": ', "is not valid JSON"),
            "random bytes": (b"\xff\xfe\x00garbage", "is not UTF-8 text")}


def _params():
    for rel, bad_field, field, cmds in CASES:
        for cmd in cmds:
            for vname, (body, words) in VARIANTS.items():
                yield pytest.param(rel, cmd, body, words, id=f"{rel}-{vname}-{cmd}")
            if bad_field is not None:
                yield pytest.param(rel, cmd, bad_field, f"field '{field}'",
                                   id=f"{rel}-wrongtype-{cmd}")


@pytest.mark.parametrize("rel,cmd,body,words", list(_params()))
def test_damaged_file_names_itself_and_changes_nothing(workspace, capsys, rel, cmd, body,
                                                       words):
    run = make_run()
    path = run.path / rel
    if isinstance(body, dict):  # the real file with one field of the wrong type
        body = json.dumps({**json.loads(path.read_text()), **body})
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    before = snapshot(run)
    rc, out = _main(COMMANDS[cmd], capsys)
    assert rc == 2, out
    assert f"Run 'r1': {rel}" in out and words in out, out
    assert ("Re-run" in out or "Restore" in out) and "delete the run" in out, out
    assert snapshot(run) == before  # nothing else written (and the damaged file kept)


def test_a_list_config_never_means_the_default_model(workspace, capsys):
    run = make_run()
    run.config_file.write_text("[]")
    with pytest.raises(RunFileError, match="config.json holds a list"):
        run.model_config()
    rc, out = _main(["train", "--run", "r1"], capsys)
    assert rc == 2 and "config.json" in out


@pytest.mark.parametrize("damage,words", [
    (lambda b: b[: len(b) // 2], "cut short"),              # cut in half mid-line
    (lambda b: b"", "holds 0 rows where the run recorded 3"),  # emptied
    (lambda b: b.split(b"\n", 1)[1], "holds 2 rows where the run recorded 3"),  # a row gone
    (lambda b: b"\x8a\x00random\x01bytes\n", "line 1 is not valid JSON"),
    (lambda b: b"[1, 2]\n" + b, "line 1 is a list, not an object"),
])
@pytest.mark.parametrize("cmd", ["export", "train"])
def test_damaged_dataset_is_never_exported_or_trained(workspace, capsys, damage, words, cmd):
    run = make_run()
    f = run.records_file("train")
    f.write_bytes(damage(f.read_bytes()))
    before = snapshot(run)
    rc, out = _main([cmd, "--run", "r1"], capsys)
    assert rc == 2 and "Run 'r1': dataset/train.jsonl" in out and words in out, out
    assert "selfguide filter --run r1" in out
    assert snapshot(run) == before and not run.export_dir.exists()


def test_predictions_read_strictly(workspace):
    run = make_run()
    assert len(run.read_predictions()) == 2
    run.predictions_file.write_bytes(run.predictions_file.read_bytes()[:-5])
    with pytest.raises(RunFileError, match="eval/predictions.jsonl is cut short"):
        run.read_predictions()
    run.predictions_file.write_text('{"id": "t0"}\n')
    with pytest.raises(RunFileError, match="holds 1 rows where the run recorded 2"):
        run.read_predictions()


def test_append_only_logs_stay_lenient(workspace):
    run = make_run()
    run.append_log(run.inputs_file, [{"id": "a"}, {"id": "b"}])
    with open(run.inputs_file, "ab") as fh:
        fh.write(b'{"id": "torn')  # a crash mid-append: the tail is not yet written
    assert [r["id"] for r in run.read_log(run.inputs_file)] == ["a", "b"]


def test_every_run_file_has_a_schema_that_names_its_writer():
    rels = {f.rel for f in schema.FILES}
    for rel in ("config.json", "manifest.json", "labelling.json", "dataset/report.json",
                "train/metrics.json", "train/train_config.json", "eval/metrics.json",
                "overrides.json", "train/adapter/selfguide_adapter.json",
                "dataset/train.jsonl", "eval/predictions.jsonl"):
        assert rel in rels
    assert all(f.writer for f in schema.FILES)


def test_runs_lists_the_other_runs_beside_a_damaged_one(workspace, capsys):
    make_run("r1")
    make_run("r2")
    RunDir.named("r1").config_file.write_text("[]")
    rc, out = _main(["runs"], capsys)
    assert rc == 2 and "config.json holds a list" in out
    assert any(line.startswith("r2 ") and "train:done" in line for line in out.splitlines())


# --------------------------------------------------------------------------- check first

def test_filter_with_unreadable_manifest_rewrites_nothing(workspace, capsys):
    run = make_run()
    run.manifest_file.write_text("{not json")
    before = snapshot(run)
    rc, out = _main(["filter", "--run", "r1"], capsys)
    assert rc == 2 and "manifest.json is not valid JSON" in out
    assert snapshot(run) == before


def test_adapter_swap_never_leaves_no_adapter(workspace, monkeypatch):
    from selfguide.runs import swap

    run = make_run()
    staged = run.adapter_staging_dir
    staged.mkdir(parents=True)
    (staged / "new.txt").write_text("new")
    seen = []
    real = swap.exchange

    def spy(a, b):
        ok = real(a, b)
        seen.append(run.adapter_dir.is_dir())
        return ok

    monkeypatch.setattr(swap, "exchange", spy)
    run.install_adapter(staged)
    assert seen == [True] and (run.adapter_dir / "new.txt").read_text() == "new"
    assert not staged.exists() and not run.adapter_old_dir.exists()


def test_crash_mid_swap_recovered_on_next_start(workspace, monkeypatch):
    from selfguide.runs import swap

    run = make_run()
    old_manifest = run.adapter_manifest_file.read_bytes()
    run.adapter_dir.rename(run.adapter_old_dir)  # killed between the two renames
    assert not run.has_adapter() and run.adapter_old_dir.is_dir()  # maybe a swap under way
    monkeypatch.setattr(swap, "GRACE_S", 0.0)  # ... until it is older than the grace
    assert run.has_adapter()  # the next reader puts it back
    assert run.adapter_manifest_file.read_bytes() == old_manifest
    assert not run.adapter_old_dir.exists()
    run.adapter_old_dir.mkdir()  # killed after the swap, before the cleanup
    assert run.has_adapter() and not run.adapter_old_dir.exists()


def test_adapter_swap_fallback_without_exchange(workspace, monkeypatch):
    from selfguide.runs import swap

    run = make_run()
    monkeypatch.setattr(swap, "exchange", lambda a, b: False)
    staged = run.adapter_staging_dir
    staged.mkdir(parents=True)
    (staged / "new.txt").write_text("new")
    run.install_adapter(staged)
    assert (run.adapter_dir / "new.txt").is_file() and not run.adapter_old_dir.exists()


def test_hf_dataset_export_on_a_full_disk_leaves_nothing(workspace, capsys, monkeypatch):
    pytest.importorskip("datasets")
    import errno

    from datasets import Dataset

    run = make_run()

    def full(self, path, *a, **k):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "data-00000-of-00001.arrow").write_bytes(b"")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Dataset, "save_to_disk", full)
    rc, out = _main(["export", "--run", "r1", "--format", "hf-dataset"], capsys)
    assert rc == 2 and "Disk full" in out
    assert not list(run.path.rglob("*.arrow"))
