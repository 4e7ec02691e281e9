"""The README stays true: its config tables match the code, and the commands it names exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_config_tables_in_sync():
    out = subprocess.run([sys.executable, "scripts/readme_tables.py", "--check"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_readme_top_commands_are_make_targets():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```")[1]
    assert "make studio" in first_block and "make test" in first_block
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in ("studio", "test", "demo", "bench"):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_readme_cli_commands_exist():
    from selfguide.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"^selfguide ([a-z-]+)", readme, re.M))
    assert named, "README names no selfguide commands"
    assert named <= set(sub.choices), named - set(sub.choices)
