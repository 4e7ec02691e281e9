"""Issue 38, CSV downloads: a cell a spreadsheet would run as a formula (``=``, ``+``,
``-``, ``@``, tab, CR at the start) opens as text; every CSV the studio offers goes through
that one writer."""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from studio.app.downloads import csv_bytes, neutralise

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\r=1"]


@pytest.mark.parametrize("cell", HOSTILE)
def test_formula_cells_are_text(cell):
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["plain", "a=b", "", " =x", "1.5"])
def test_other_cells_unchanged(cell):
    assert neutralise(cell) == cell


def test_csv_bytes_candidates_and_predictions():
    df = pd.DataFrame({"input": HOSTILE, "after": ["ok"] * len(HOSTILE),
                       "n": list(range(-3, len(HOSTILE) - 3)),
                       "samples": [["=1"]] * len(HOSTILE)})
    rows = list(csv.DictReader(io.StringIO(csv_bytes(df).decode("utf-8"), newline="")))
    assert [r["input"] for r in rows] == ["'" + c for c in HOSTILE]
    assert [r["after"] for r in rows] == ["ok"] * len(HOSTILE)
    assert [r["n"] for r in rows] == [str(i) for i in range(-3, len(HOSTILE) - 3)]  # numbers


def test_every_studio_csv_goes_through_csv_bytes():
    """No ``to_csv`` in the studio outside the one safe writer."""
    found = []
    for path in (ROOT / "studio").rglob("*.py"):
        if path.name == "downloads.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "to_csv":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
