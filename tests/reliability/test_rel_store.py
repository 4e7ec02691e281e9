"""Workspace safety and "nothing lost" properties of :mod:`selfguide.runs.store`.

RELIABILITY.md risks 8 (run names), 20 (torn JSONL), 21 (atomic writes under SIGKILL),
22 (concurrent appends) and 23 (disk full / read-only workspace).
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from selfguide.errors import CorruptFile, InvalidRunName, StorageError
from selfguide.runs import store

REPO = Path(__file__).resolve().parents[2]
NAME_RE = r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z"


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --------------------------------------------------------------------------- run names

# Explicit vectors from RELIABILITY.md "Bad inputs" 6.
BAD_NAMES = [
    "../../etc", "..", ".", "", "   ", "/etc/passwd", "a/b", "a\\b", "C:\\x", "\\\\host\\share",
    "CON", "nul.txt", "com1", "name\x00x", "..\uff0fx", "\u202eexe.txt", "run\U0001f600",
    "x" * 300, "-rf", "trailing.", "trailing ", "run\n", "./run", "run/..", "a..b", "~root",
    "$HOME", "run\t", "r" * 65,
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:30])
def test_bad_run_names_refused(name, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    before = _files(tmp_path)
    with pytest.raises(InvalidRunName) as info:
        store.resolve_run_dir(name, ws, create=True)
    assert "run name" in str(info.value).lower() and "Hint:" in str(info.value)
    assert _files(tmp_path) == before  # nothing created anywhere


@pytest.mark.parametrize("name", ["sentiment-1", "A", "run_2.v3", "x" * 64, "0abc"])
def test_good_run_names_stay_inside(name, tmp_path):
    ws = tmp_path / "ws"
    path = store.resolve_run_dir(name, ws, create=True)
    assert path.is_dir() and path.parent == (ws / "runs").resolve()


@pytest.fixture(scope="module")
def names_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("names")


_NAME_CHARS = st.sampled_from(list("./\\-_ aZ09~:\x00\n\u202e\uff0f\u00e9"))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(name=st.one_of(st.text(), st.text(_NAME_CHARS, max_size=12)))
@example("../../etc")
@example("run\n")
def test_run_name_hypothesis(names_root, name):
    """Any text: either InvalidRunName, or a directory inside the workspace whose name
    matches the documented pattern; never a file outside ``ws``."""
    outer = names_root / "outer"
    ws = outer / "ws"
    ws.mkdir(parents=True, exist_ok=True)
    try:
        path = store.resolve_run_dir(name, ws, create=True)
    except InvalidRunName:
        pass
    else:
        import re

        assert re.fullmatch(NAME_RE, name) and ".." not in name
        assert path.resolve().is_relative_to(ws.resolve())
        assert path.parent == (ws / "runs").resolve()
        shutil.rmtree(path)
    assert {p.name for p in outer.iterdir()} == {"ws"}


def test_symlinked_run_dir_refused(tmp_path):
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "runs").mkdir(parents=True)
    outside.mkdir()
    (ws / "runs" / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidRunName, match="symbolic link"):
        store.resolve_run_dir("evil", ws, create=True)
    assert "evil" not in store.list_runs(ws)
    assert list(outside.iterdir()) == []


def test_symlinked_runs_dir_refused(tmp_path):
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir()
    outside.mkdir()
    (ws / "runs").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidRunName):
        store.resolve_run_dir("fine", ws, create=True)
    assert list(outside.iterdir()) == []


def test_append_refuses_symlinked_file(tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("keep me\n")
    link = tmp_path / "events.jsonl"
    link.symlink_to(target)
    with pytest.raises(StorageError, match="symbolic link"):
        store.append_jsonl(link, [{"a": 1}])
    assert target.read_text() == "keep me\n"


# --------------------------------------------------------------------------- torn JSONL

_TEXT = st.text(alphabet=st.sampled_from(list("ab \"\\\n\u00e9\u4e2d\U0001f600\u202e")),
                max_size=8)
_RECORD = st.fixed_dictionaries({"id": st.integers(0, 10**6), "text": _TEXT})


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_RECORD, min_size=1, max_size=8), data=st.data())
def test_jsonl_torn_tail(records, data):
    """Truncate a JSONL file at any byte (mid UTF-8 included): the reader returns exactly
    the records whose newline was written, and an append after that loses none of them."""
    d = Path(tempfile.mkdtemp(prefix="sg-rel-jsonl-"))
    try:
        path = d / "inputs.jsonl"
        store.append_jsonl(path, records)
        blob = path.read_bytes()
        ends, pos = [], 0
        for _ in records:
            pos = blob.index(b"\n", pos) + 1
            ends.append(pos)
        cut = data.draw(st.integers(0, len(blob)), label="cut")
        with open(path, "r+b") as fh:
            fh.truncate(cut)
        committed = [r for r, e in zip(records, ends) if e <= cut]
        assert store.read_jsonl(path) == committed
        extra = [{"id": -1, "text": "after \u00e9 crash"}]
        store.append_jsonl(path, extra)
        assert store.read_jsonl(path) == committed + extra
        assert path.read_bytes().endswith(b"\n")
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("bad", [b"{not json}", b"\xff\xfe", b"[1, 2]"])
def test_jsonl_corrupt_middle_line_names_line(tmp_path, bad):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n' + bad + b'\n{"a": 3}\n')
    with pytest.raises(CorruptFile, match=r"line 2"):
        store.read_jsonl(path)


# --------------------------------------------------------------------------- atomic writes

_WRITER = r"""
import sys, hashlib
from selfguide.runs import store
path = sys.argv[1]
print("ready", flush=True)
i = 0
while True:
    i += 1
    payload = (str(i) * 400000)[:400000]
    store.atomic_write_json(path, {"version": i, "payload": payload,
                                   "sha": hashlib.sha1(payload.encode()).hexdigest()})
"""


def test_atomic_write_sigkill_50_trials(tmp_path):
    """A child rewrites a 400 kB manifest in a loop and is SIGKILLed at a random moment,
    50 times: the file is always a complete old or new version; stale temps get cleaned."""
    import hashlib

    path = tmp_path / "manifest.json"
    store.atomic_write_json(path, {"version": 0, "payload": "", "sha": hashlib.sha1(b"").hexdigest()})
    rng = random.Random(7)
    versions, mid_write, temps_before = [], 0, 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(50):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)],
                                stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.06))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        obj = store.read_json(path)  # raises CorruptFile if torn
        assert hashlib.sha1(obj["payload"].encode()).hexdigest() == obj["sha"]
        versions.append(obj["version"])
        temps = len(list(tmp_path.glob(".manifest.json.*.tmp")))
        mid_write += temps > temps_before  # this kill left a half-written temp file
        temps_before = temps
    assert len(versions) == 50
    # temps left by killed writers are removed at the next start
    for p in tmp_path.glob(".*.tmp"):
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    store.clean_stale_temps(tmp_path)
    assert list(tmp_path.glob(".*.tmp")) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    print(f"atomic-write trials=50 versions_seen={len(set(versions))} "
          f"killed_mid_write={mid_write}")


# --------------------------------------------------------------------------- concurrency

_APPENDER = r"""
import sys
from selfguide.runs import store
path, writer, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    store.append_jsonl(path, [{"writer": writer, "i": i, "text": "\u00e9" * (i % 50)}])
"""


def test_concurrent_appends_two_processes(tmp_path):
    path = tmp_path / "inputs.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(path), w, "1000"], env=env)
             for w in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    recs = store.read_jsonl(path)
    assert len(recs) == 2000
    for w in ("a", "b"):
        assert [r["i"] for r in recs if r["writer"] == w] == list(range(1000))
    assert len(path.read_bytes().split(b"\n")) == 2001


# --------------------------------------------------------------------------- disk full / read-only

def _failing_write(err: int, after: int = 5):
    real = store._write_fd

    def write(fd, data):
        real(fd, data[:after])  # a partial write, then the device gives up
        raise OSError(err, os.strerror(err))
    return write


@pytest.mark.parametrize("err,reason", [(errno.ENOSPC, "disk_full"), (errno.EROFS, "readonly")])
def test_write_failure_keeps_old_data(tmp_path, monkeypatch, err, reason):
    jl, js = tmp_path / "inputs.jsonl", tmp_path / "manifest.json"
    store.append_jsonl(jl, [{"id": 1}, {"id": 2}])
    store.atomic_write_json(js, {"stages": {"synthesize": "done"}})
    old_jl, old_js = jl.read_bytes(), js.read_bytes()
    monkeypatch.setattr(store, "_write_fd", _failing_write(err))
    with pytest.raises(StorageError) as info:
        store.append_jsonl(jl, [{"id": 3}, {"id": 4}])
    assert str(jl) in str(info.value) and info.value.reason == reason
    with pytest.raises(StorageError) as info:
        store.atomic_write_json(js, {"stages": {}})
    assert str(js) in str(info.value) and info.value.reason == reason
    assert jl.read_bytes() == old_jl and js.read_bytes() == old_js
    # no temp files left behind (lock files are expected)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == [
        "inputs.jsonl", "manifest.json"]
    monkeypatch.undo()  # space again: the retry does not duplicate anything
    store.append_jsonl(jl, [{"id": 3}, {"id": 4}])
    assert [r["id"] for r in store.read_jsonl(jl)] == [1, 2, 3, 4]


_CAPS_DROPPED = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def _drop_root_file_powers():
    """preexec_fn: stay uid 0 (so the venv under /root is readable) but lose the
    capabilities that let root ignore file permissions (prctl PR_CAPBSET_DROP)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _CAPS_DROPPED:
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # 24 = PR_CAPBSET_DROP
            os._exit(97)


def test_real_readonly_workspace(tmp_path):
    """A workspace the process may not write: a StorageError naming the path, and the
    existing records are untouched. As root, the child drops CAP_DAC_OVERRIDE first."""
    base = Path(tempfile.mkdtemp(prefix="sg-rel-ro-"))
    try:
        run = base / "ws" / "runs" / "r1"
        store.append_jsonl(run / "inputs.jsonl", [{"id": 1}])
        code = ("import sys\nfrom selfguide.runs import store\nfrom selfguide.errors import "
                "StorageError\ntry:\n    store.append_jsonl(sys.argv[1], [{'id': 2}])\n"
                "except StorageError as e:\n    print('ERR', e.reason, e)\n    sys.exit(3)\n")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for p in [base, *base.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        res = subprocess.run([sys.executable, "-c", code, str(run / "inputs.jsonl")],
                             capture_output=True, text=True, env=env, timeout=60,
                             preexec_fn=_drop_root_file_powers if os.geteuid() == 0 else None)
        if res.returncode == 97:
            pytest.skip("cannot drop CAP_DAC_OVERRIDE here (no CAP_SETPCAP); root ignores "
                        "file modes, so a read-only workspace cannot be simulated")
        assert res.returncode == 3, res.stdout + res.stderr
        assert "ERR readonly" in res.stdout and str(run / "inputs.jsonl") in res.stdout
        assert store.read_jsonl(run / "inputs.jsonl") == [{"id": 1}]
    finally:
        for p in [base, *base.rglob("*")]:
            p.chmod(0o755)
        shutil.rmtree(base)


def test_read_json_reports_bad_bytes(tmp_path):
    p = tmp_path / "config.json"
    p.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(CorruptFile, match="byte"):
        store.read_json(p)
    p.write_text('{"a": ')
    with pytest.raises(CorruptFile, match="line 1"):
        store.read_json(p)


def test_atomic_temp_is_a_sibling(tmp_path, monkeypatch):
    """The temp file lives next to its target, so ``os.replace`` never crosses devices
    (a workspace on another mount than /tmp stays atomic)."""
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append((Path(src), Path(dst)))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    store.atomic_write_json(tmp_path / "sub" / "config.json", {"a": 1})
    (src, dst), = seen
    assert src.parent == dst.parent == tmp_path / "sub" and src.name.endswith(".tmp")
