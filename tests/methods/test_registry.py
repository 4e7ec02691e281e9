"""A third method is one new folder: registered from outside ``selfguide/``, it appears in
the CLI, the jobs, the cards and the studio, and no module outside a method's own folder
names a method."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
METHOD_NAMES = {"selfguide", "selfinstruct", "self-instruct"}
# "selfguide" is also the product's name: these are the places it means the product.
PRODUCT_NAME = {"selfguide/cli.py": "prog", "selfguide/jobs/launch.py": "module",
                "selfguide/task/spec.py": "resources", "selfguide/models/convert.py": "cache",
                "selfguide/export/cards.py": "tags"}


def _cli(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selfguide", "--workspace", str(workspace),
                           *args], capture_output=True, text=True, timeout=120)


def test_the_toy_method_is_registered_and_listed(toy_method):
    from selfguide import methods

    assert "toymethod" in methods.names()
    assert methods.default().name != "toymethod"
    assert methods.by_stage("toy-synth") is toy_method
    assert "toy-synth" in methods.stages()


def test_the_cli_synthesizes_filters_and_exports_with_the_toy_method(toy_method, workspace):
    helptext = _cli(workspace, "synthesize", "--help").stdout
    assert "toymethod" in helptext and "--count" in helptext and "--min-chars" in helptext
    made = _cli(workspace, "synthesize", "--method", "toymethod", "--run", "toy", "--count", "5")
    assert made.returncode == 0, made.stderr
    assert "toy rows: 5 candidates, 5 kept" in made.stdout
    run = workspace / "runs" / "toy"
    assert json.loads((run / "config.json").read_text())["method"] == "toymethod"
    assert json.loads((run / "jobs" / "toy-synth" / "status.json").read_text())["state"] \
        == "finished"
    # Refiltering goes through the registry: inputs of >= 12 characters only.
    refiltered = _cli(workspace, "filter", "--run", "toy", "--min-chars", "12")
    assert refiltered.returncode == 0, refiltered.stderr
    lines = (run / "dataset" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 3
    out = workspace / "toy-export" / "toy.jsonl"
    out.parent.mkdir()
    exported = _cli(workspace, "export", "--run", "toy", "--format", "jsonl", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert len(out.read_text().splitlines()) == 3
    # The dataset card beside it names the method as the method says it is cited.
    assert "Toy (tests)" in (out.parent / "README.md").read_text()
    runs = _cli(workspace, "runs")
    assert runs.returncode == 0 and "toy" in runs.stdout


def test_stage_guard_and_jobs_panel_know_the_toy_stage(toy_method):
    from selfguide.jobs.state import input_writers
    from studio.app import jobs as sjobs

    assert "toy-synth" in input_writers("train") and "toy-synth" in input_writers("filter")
    assert sjobs.stage_title("toy-synth") == "Synthesis"
    view = sjobs.progress_view({"state": "running", "started": 0.0},
                               [{"type": "progress", "stage": "toy", "done": 1, "total": 2}],
                               job="toy-synth")
    assert view["fraction"] == 0.5 and "toy 1/2" in view["text"]
    assert sjobs.stage_words("toy") == "writing toy rows"


def test_the_model_card_names_the_toy_method(toy_method):
    from selfguide.export import cards

    facts = {"config": {"method": "toymethod"}, "adapter": {}}
    assert cards._method(facts) == "Toy (tests)"
    assert cards._method_of(facts) is toy_method


def _string_constants(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_no_method_name_outside_its_own_folder():
    """Callers dispatch through the registry: a method's name appears only in its folder
    (``selfguide/methods/<name>/``) and its own CLI command."""
    own = {"selfguide/commands/self_instruct.py", "selfguide/commands/synthesize.py"}
    found = []
    for pkg in ("selfguide", "studio"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith(("selfguide/methods/selfguide/", "selfguide/methods/selfinstruct/"))\
                    or rel in own:
                continue
            for line, value in _string_constants(path):
                if value in METHOD_NAMES and not (value == "selfguide" and rel in PRODUCT_NAME):
                    found.append(f"{rel}:{line} {value!r}")
    assert found == []


@pytest.mark.parametrize("name", sorted(METHOD_NAMES))
def test_the_name_check_would_catch_a_method_name(tmp_path, name):
    path = tmp_path / "m.py"
    path.write_text(f"if method == {name!r}:\n    pass\n")
    assert [v for _, v in _string_constants(path)] == [name]
