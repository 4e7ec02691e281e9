"""Issue 32: ``RunDir`` (``selfguide/runs/``) is the only reader and writer of a run's
files. No module outside ``selfguide/runs/`` calls the store's file primitives, and none
reads or writes a file it reaches through a ``RunDir`` path (``run.config_file``,
``run.records_file(...)``...) by hand; a file the user gives (a task, a test set) or an
export's own output folder is not a run file (listed below, each with its reason)."""

from __future__ import annotations

import ast
from pathlib import Path

from selfguide.runs.rundir import RunDir

ROOT = Path(__file__).resolve().parents[2]
STORE_FILE_IO = {"read_json", "atomic_write_json", "atomic_write_text", "atomic_write_bytes",
                 "read_jsonl", "iter_jsonl", "append_jsonl", "read_manifest",
                 "update_manifest", "set_stage", "repair_jsonl_tail"}
# module -> store calls it may make, and why they are not run files
NOT_RUN_FILES = {
    "selfguide/task/formats.py": {"read_jsonl"},      # a test set the user gives (--test)
    "selfguide/export/model.py": {"atomic_write_json"},  # export.json in the --out folder
    "selfguide/export/cards.py": {"atomic_write_text"},  # README.md of an export folder
    "selfguide/commands/label.py": {"atomic_write_text"},  # labels output, outside runs
}
HAND_IO = {"read_bytes", "read_text", "write_bytes", "write_text", "read_parquet", "open",
           "unlink", "iter_jsonl", "tail_jsonl", "count_rows"}
RUN_PATHS = {n for n in dir(RunDir) if n.endswith(("_file", "_dir"))} | {"records_file"}
# (module, RunDir path): reads the studio does by hand on purpose
HAND_READS_ALLOWED = {
    # live previews tail append-only logs while a job appends (never a whole-file read)
    ("studio/views/methods/selfguide.py", "inputs_file"),
    ("studio/views/methods/selfguide.py", "annotations_file"),
    ("studio/views/synthesize_previews.py", "inputs_file"),
    ("studio/views/methods/selfinstruct.py", "rounds_file"),
    # GGUF files of an export folder offered for download
    ("studio/views/compare.py", "gguf_dir"),
}


def _modules():
    for base in ("selfguide", "studio"):
        for path in (ROOT / base).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            if not rel.startswith("selfguide/runs/"):
                yield rel, ast.parse(path.read_text())


def _run_path_in(node: ast.AST) -> str | None:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in RUN_PATHS:
            return sub.attr
    return None


def test_no_store_file_io_outside_runs():
    found = []
    for rel, tree in _modules():
        allowed = NOT_RUN_FILES.get(rel, set())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in STORE_FILE_IO
                    and isinstance(node.value, ast.Name) and node.value.id == "store"
                    and node.attr not in allowed):
                found.append(f"{rel}:{node.lineno} store.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "selfguide.runs.store":
                found += [f"{rel}:{node.lineno} import {a.name}" for a in node.names
                          if a.name in STORE_FILE_IO]
    assert found == [], "route these through RunDir methods:\n" + "\n".join(found)


def test_no_hand_io_on_run_paths_outside_runs():
    found = []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name not in HAND_IO:
                continue
            where = _run_path_in(f.value) if isinstance(f, ast.Attribute) else None
            where = where or next(filter(None, map(_run_path_in, node.args)), None)
            if where and (rel, where) not in HAND_READS_ALLOWED:
                found.append(f"{rel}:{node.lineno} {name}(... {where} ...)")
    assert found == [], "route these through RunDir methods:\n" + "\n".join(found)


def test_the_scan_sees_a_violation(tmp_path):
    """The scan is not vacuous: it flags the patterns it is meant to."""
    tree = ast.parse("store.read_json(run.config_file)\nrun.report_file.read_text()\n")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert {c.func.attr for c in calls} == {"read_json", "read_text"}
    assert _run_path_in(calls[0].args[0]) == "config_file"
    assert _run_path_in(calls[1].func.value) == "report_file"
