"""Static checks over the source: model loads never run remote code or unpickle weights,
model output never reaches HTML unescaped, and dependencies are new enough.

RELIABILITY.md risks 4, 5, 10 and 11 (the C layer). These read the code with ``ast``; the
behaviour tests for the same risks live in ``test_rel_models.py``.
"""

from __future__ import annotations

import ast
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LIB_DIRS = ["selfguide", "studio"]
UI_FILES = ["streamlit_app.py", "studio"]

# Loaders that may fetch weights: they must say use_safetensors=True (or load a GGUF file).
_WEIGHT_LOADERS = ("AutoModel", "ForCausalLM", "ForSequenceClassification", "PreTrainedModel")


def _py_files(entries: list[str]) -> list[Path]:
    out = []
    for e in entries:
        p = REPO / e
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(p.rglob("*.py")))
    return out


def _calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _receiver(call: ast.Call) -> str:
    f = call.func
    if isinstance(f, ast.Attribute):
        return ast.unparse(f.value)
    return ""


def _kw(call: ast.Call, name: str) -> ast.keyword | None:
    return next((k for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.AST, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{node.lineno}"


def test_sources_exist():
    assert len(_py_files(LIB_DIRS)) >= 10  # the scan below is not vacuous


def test_every_from_pretrained_passes_trust_remote_code_explicitly():
    bad, seen = [], 0
    for path in _py_files(LIB_DIRS):
        for call in _calls(path):
            f = call.func
            if not (isinstance(f, ast.Attribute) and f.attr == "from_pretrained"):
                continue
            recv = _receiver(call)
            if recv.startswith("Peft") or recv.endswith("Config") and "Lora" in recv:
                continue  # PEFT takes no trust_remote_code; see the adapter tests
            seen += 1
            kw = _kw(call, "trust_remote_code")
            if kw is None or _is_const(kw.value, True):
                bad.append(f"{_where(path, call)} {ast.unparse(call)[:90]}")
    assert seen >= 1, "no from_pretrained call found: has the loader moved?"
    assert bad == [], "from_pretrained without an explicit trust_remote_code:\n" + "\n".join(bad)


def test_weight_loads_require_safetensors():
    bad = []
    for path in _py_files(LIB_DIRS):
        for call in _calls(path):
            f = call.func
            if not (isinstance(f, ast.Attribute) and f.attr == "from_pretrained"):
                continue
            recv = _receiver(call)
            if not any(t in recv for t in _WEIGHT_LOADERS):
                continue
            kw = _kw(call, "use_safetensors")
            if _kw(call, "gguf_file") is None and (kw is None or not _is_const(kw.value, True)):
                bad.append(f"{_where(path, call)} {ast.unparse(call)[:90]}")
    assert bad == [], "model loads that may unpickle .bin weights:\n" + "\n".join(bad)


def test_no_unsafe_deserialisation_or_shell():
    bad = []
    for path in _py_files(LIB_DIRS + ["streamlit_app.py"]):
        for call in _calls(path):
            name = ast.unparse(call.func)
            if name in ("torch.load",):
                kw = _kw(call, "weights_only")
                if kw is None or not _is_const(kw.value, True):
                    bad.append(f"{_where(path, call)} torch.load without weights_only=True")
            if name in ("pickle.load", "pickle.loads", "eval", "exec", "os.system"):
                bad.append(f"{_where(path, call)} {name}")
            kw = _kw(call, "shell")
            if kw is not None and not _is_const(kw.value, False):
                bad.append(f"{_where(path, call)} shell=")
            kw = _kw(call, "trust_remote_code")
            if kw is not None and _is_const(kw.value, True):
                bad.append(f"{_where(path, call)} trust_remote_code=True")
    assert bad == [], "\n".join(bad)


def _static_text(node: ast.AST) -> bool:
    """A string fixed in the source (a literal, or an f-string with no placeholders)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _static_text(node.left) and _static_text(node.right)
    return False


def test_no_unsafe_html_on_dynamic_strings():
    files = _py_files(UI_FILES)
    bad = []
    for path in files:
        for call in _calls(path):
            name = ast.unparse(call.func)
            first = call.args[0] if call.args else None
            kw = _kw(call, "unsafe_allow_html")
            risky = (kw is not None and not _is_const(kw.value, False)) or name in (
                "st.html", "html", "components.html", "st.components.v1.html",
                "streamlit.components.v1.html", "components.v1.html")
            if risky and (first is None or not _static_text(first)):
                bad.append(f"{_where(path, call)} {ast.unparse(call)[:100]}")
    assert bad == [], "HTML rendering of non-constant text (model output is data):\n" + \
        "\n".join(bad)


def test_static_html_check_catches_a_violation(tmp_path):
    """The checker itself: a page that renders a prediction as HTML is flagged."""
    page = tmp_path / "page.py"
    page.write_text("import streamlit as st\npred = 'x'\n"
                    "st.markdown(f'<b>{pred}</b>', unsafe_allow_html=True)\n"
                    "st.markdown('<hr>', unsafe_allow_html=True)\nst.html(pred)\n")
    hits = []
    for call in _calls(page):
        kw = _kw(call, "unsafe_allow_html")
        name = ast.unparse(call.func)
        if (kw is not None and _is_const(kw.value, True)) or name == "st.html":
            hits.append(_static_text(call.args[0]))
    assert hits == [False, True, False]


@pytest.mark.parametrize("dist,minimum", [
    ("streamlit", "1.61"), ("torch", "2.10"), ("filelock", "3.20.3"),
    ("transformers", "5.0"), ("peft", "0.17"), ("safetensors", "0.4"),
])
def test_min_versions(dist, minimum):
    """Versions with known advisories are not installed (RELIABILITY.md risk 4)."""
    assert Version(metadata.version(dist)) >= Version(minimum)


def test_pyproject_pins_minimums():
    text = (REPO / "pyproject.toml").read_text()
    for req in ("streamlit>=1.61", "torch>=2.10", "filelock>=3.20.3"):
        assert f'"{req}' in text, req
