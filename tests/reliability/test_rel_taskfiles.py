"""Issue 38, hostile task files: a YAML alias bomb ("billion laughs") is refused before
anything is expanded (fast, little memory, exit 2), and every field is type-checked
before it is turned into text."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfguide import cli
from selfguide.errors import TaskError
from selfguide.task.formats import parse_task_bytes

REPO = Path(__file__).resolve().parents[2]
DEMOS = ("examples:\n  - {input: a, output: b}\n  - {input: c, output: d}\n"
         "  - {input: e, output: f}\n")


def _bomb(levels: int = 9, width: int = 10, key: str = "source") -> str:
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        refs = ", ".join(f"*a{i - 1}" for _ in range(width))
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + f"\ninstruction: Say it.\n{key}: *a{levels}\n" + DEMOS


@pytest.mark.parametrize("key", ["source", "name"])
def test_alias_bomb_refused_in_process(key):
    t0 = time.monotonic()
    with pytest.raises(TaskError, match=r"bomb.yaml: line 2 uses the YAML alias \*a0; task "
                                        r"files may not use aliases"):
        parse_task_bytes(_bomb(key=key).encode(), "bomb.yaml")
    assert time.monotonic() - t0 < 2


def test_alias_bomb_cli_fast_small_exit_2(tmp_path):
    """The CLI in its own process: exit 2 in under 2 s, under 200 MB more than Python
    with the CLI imported, the message names the file and no traceback."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb())
    code = ("import resource, sys, time; from selfguide import cli; "
            "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; t0 = time.monotonic(); "
            f"rc = cli.main(['synthesize', {str(bomb)!r}, '--run', 'b1']); "
            "dt = time.monotonic() - t0; "
            "r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            "print(f'RESULT {rc} {dt:.3f} {(r1 - r0) / 1024:.1f}', file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    rc, dt, mb = p.stderr.strip().splitlines()[-1].split()[1:]
    assert int(rc) == 2 and float(dt) < 2 and float(mb) < 200, p.stderr
    assert "bomb.yaml" in p.stderr and "alias" in p.stderr and "Traceback" not in p.stderr


def test_anchors_without_aliases_still_load():
    text = "instruction: &i Say it.\n" + DEMOS
    assert parse_task_bytes(text.encode(), "ok.yaml").instruction == "Say it."


@pytest.mark.parametrize("body,match", [
    ("instruction: Say it.\nsource: [1, 2]\n" + DEMOS, "source must be a string"),
    ("instruction: Say it.\nname: {a: 1}\n" + DEMOS, "name must be a string"),
    ("instruction: Say it.\ntask_type: [classification]\n" + DEMOS, "task_type"),
    ("instruction: Say it.\n12: x\n" + DEMOS, "keys must be text"),
    ("instruction: [1]\n" + DEMOS, "instruction must be a string"),
])
def test_fields_type_checked_before_text(body, match):
    with pytest.raises(TaskError, match=match):
        parse_task_bytes(body.encode(), "t.yaml")


def test_cli_wrong_type_exit_2(workspace, tmp_path, capsys):
    bad = tmp_path / "t.yaml"
    bad.write_text("instruction: Say it.\nsource: {deep: [1, 2]}\n" + DEMOS)
    assert cli.main(["synthesize", str(bad), "--run", "t1"]) == 2
    out = capsys.readouterr()
    assert "source must be a string" in out.err and "Traceback" not in out.err
