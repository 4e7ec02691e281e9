"""Uploads are validated by content, not by extension (RELIABILITY.md #7): a binary file
named ``.json``, Latin-1 bytes, or a truncated JSON is refused with a message naming the
problem, and nothing is written to the workspace; a valid file is imported."""

from __future__ import annotations

import json

import pytest

from studio.app import state

VALID = {
    "name": "uploaded-task", "instruction": "Say whether the review is positive or negative.",
    "task_type": "classification", "labels": ["positive", "negative"],
    "examples": [{"input": "Great phone.", "output": "positive"},
                 {"input": "Broke in a week.", "output": "negative"}],
}


def _files(ws):
    return sorted(p.relative_to(ws) for p in ws.rglob("*") if p.is_file())


def _upload(at, name: str, data: bytes):
    at.switch_page("studio/pages/task.py").run()
    at.file_uploader(key=state.widget_key("task", "upload")).set_value(
        (name, data, "application/json")).run()
    hits = [b for b in at.button if b.label == "Import"]
    assert hits, "the Import button appears once a file is chosen"
    hits[0].click().run()
    assert not at.exception
    return at


@pytest.mark.parametrize("name, data, needle", [
    ("evil.json", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" * 64, "UTF-8"),
    ("latin1.json", b'{"instruction": "caf\xe9"}', "UTF-8"),
    ("trunc.json", b'{"instruction": "x", "examples": [', "JSON"),
    ("x.exe:$s.jsonl", b"\x00\x01\x02binary", ""),
    ("empty.json", b"", ""),
])
def test_bad_upload_is_refused_by_content_and_writes_nothing(app, workspace, name, data,
                                                            needle):
    before = _files(workspace)
    at = _upload(app(), name, data)
    errors = [e.value for e in at.error]
    assert errors, f"no error shown for {name}"
    assert needle in "\n".join(errors)
    names = [t.value for t in at.text_input if t.label == "Name"]
    assert names == ["my-task"], "a refused upload must not replace the draft task"
    assert _files(workspace) == before


def test_valid_upload_is_imported(app, workspace):
    at = _upload(app(), "task.json", json.dumps(VALID).encode())
    assert not at.error
    names = [t.value for t in at.text_input if t.label == "Name"]
    assert names == ["uploaded-task"], names


def test_synthesize_page_reports_a_corrupt_candidates_file(app, runs):
    """A torn candidates.parquet is an error message on the page, not a traceback."""
    d = runs.task("torn")
    (d / "candidates.parquet").write_bytes(b"PAR1 not really parquet")
    at = app(run="torn")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    assert any("cannot be read" in e.value for e in at.error)
