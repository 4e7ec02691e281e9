"""Run directories on disk: the single source of truth shared by the CLI and the studio.

What it does: locates the workspace, validates run names (no path escapes, no symlinked
run dirs), writes whole files atomically (temp file in the same directory + fsync +
``os.replace``), appends JSONL records durably (file lock, repair of a torn last line,
fsync per batch), reads JSONL leniently at the tail and strictly in the middle, and keeps a
per-run ``manifest.json`` with stage status and config hashes.

What it does not do: decide what goes into a run (the stage modules do) or run jobs
(``selfguide.jobs``).

The layout of a run (``<workspace>/runs/<name>/``) is owned by
:class:`selfguide.runs.rundir.RunDir`, which names every file once and uses these primitives.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from selfguide.errors import CorruptFile, InvalidRunName, RunNotFound, StorageError
from selfguide.runs.names import RUN_NAME_RE, validate_run_name

WORKSPACE_ENV = "SELFGUIDE_WORKSPACE"
MANIFEST_NAME = "manifest.json"  # RunDir.manifest_file


# --------------------------------------------------------------------------- workspace

def workspace_dir(path: str | os.PathLike | None = None) -> Path:
    """The workspace root: ``path``, else ``$SELFGUIDE_WORKSPACE``, else ``./workspace``."""
    root = Path(path or os.environ.get(WORKSPACE_ENV) or "workspace").expanduser()
    return root.resolve()


def runs_dir(workspace: str | os.PathLike | None = None) -> Path:
    return workspace_dir(workspace) / "runs"


def resolve_run_dir(name: str, workspace: str | os.PathLike | None = None, *,
                    create: bool = False, must_exist: bool = False) -> Path:
    """The directory of run ``name``, guaranteed inside the workspace.

    Raises ``InvalidRunName`` for unsafe names or a symlinked run directory, and
    ``RunNotFound`` when ``must_exist`` and it does not exist.
    """
    validate_run_name(name)
    root = workspace_dir(workspace)
    base = root / "runs"
    path = base / name
    for p in (base, path):
        if p.is_symlink():
            raise InvalidRunName(f"{p} is a symbolic link; refusing to use it as a run "
                                 "directory.",
                                 hint="Remove the link or choose another run name.")
    # Resolve-then-contain (never a string prefix test): catches links higher up as well.
    if not path.resolve().is_relative_to(root):
        raise InvalidRunName(f"Run name {name!r} resolves outside the workspace {root}.",
                             hint="Use a plain run name inside the workspace.")
    if must_exist and not path.is_dir():
        raise RunNotFound(f"No run named {name!r} in {base}.",
                          hint="List runs with 'selfguide runs' or create one with "
                               "'selfguide synthesize TASK --run NAME'.")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _storage_error(exc, path) from exc
    return path


def discard_new_run(path: Path, keep_if_any: Iterable[str]) -> bool:
    """After a failed command that created the run directory ``path``: remove it unless it
    holds resumable work (any of ``keep_if_any``). Returns True if it was removed.

    "Nothing is written on failure": a synthesize whose model check fails, or a
    self-instruct with a bad seed file, must not leave an empty run behind.
    """
    import shutil

    if not path.is_dir() or path.is_symlink() or any((path / n).exists() for n in keep_if_any):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return not path.exists()


def list_runs(workspace: str | os.PathLike | None = None) -> list[str]:
    base = runs_dir(workspace)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir()
                  if p.is_dir() and not p.is_symlink() and RUN_NAME_RE.fullmatch(p.name))


# --------------------------------------------------------------------------- atomic files

def _storage_error(exc: OSError, path: Path) -> StorageError:
    """A ``StorageError`` naming ``path``; ``.reason`` is disk_full | readonly | io."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        err = StorageError(f"Disk full while writing {path}.",
                           hint="Free some space and rerun; earlier results are kept.")
        reason = "disk_full"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        err = StorageError(f"Cannot write {path}: the workspace is read-only or not writable.",
                           hint=f"Choose a writable workspace with ${WORKSPACE_ENV}.")
        reason = "readonly"
    elif exc.errno == errno.ELOOP:
        err = StorageError(f"Refusing to write {path}: it is a symbolic link.",
                           hint="Remove the link; run files must be regular files.")
        reason = "symlink"
    else:
        err = StorageError(f"Cannot write {path}: {exc.strerror or exc}.")
        reason = "io"
    err.reason, err.path = reason, str(path)  # read by selfguide.jobs for the job status
    return err


def _write_fd(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (the one place bytes hit the disk; tests inject
    ENOSPC/EROFS here)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a mix.

    ``fsync=False`` keeps the atomic rename but skips the flushes to disk: for frequent,
    disposable writes such as job heartbeats (a crash may then lose the last one).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            try:
                _write_fd(fd, data)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if fsync:
            _fsync_dir(path.parent)
    except OSError as exc:
        raise _storage_error(exc, path) from exc


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Parse a JSON file; ``default`` if missing; ``CorruptFile`` if unparseable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return default
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CorruptFile(f"{path} is not UTF-8 (byte {exc.start}).",
                          hint="Restore the file or delete it and rerun the stage.") from exc
    except json.JSONDecodeError as exc:
        raise CorruptFile(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}).",
                          hint="Restore the file or delete it and rerun the stage.") from exc


def clean_stale_temps(directory: str | os.PathLike, max_age_s: float = 60.0) -> int:
    """Remove ``.*.tmp`` files left by writers that were killed; returns how many."""
    n = 0
    now = time.time()
    for p in Path(directory).rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > max_age_s:
                p.unlink()
                n += 1
    return n


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- JSONL

@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Hold ``<path>.lock``; a lock file that cannot be created (read-only workspace) is a
    ``StorageError`` naming it, not an ``OSError`` from filelock."""
    with file_lock(Path(str(path) + ".lock"), timeout=60):
        yield


@contextlib.contextmanager
def file_lock(lock_path: Path, *, timeout: float) -> Iterator[None]:
    """A ``filelock.FileLock`` whose acquisition failures are ``StorageError``s."""
    from filelock import (
        FileLock,  # light import, but keep the module import-cheap
        Timeout,
    )

    lock = FileLock(str(lock_path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise
    except OSError as exc:  # PermissionError / EROFS creating the lock file
        raise _storage_error(exc, lock_path) from exc
    try:
        yield
    finally:
        lock.release()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All committed records of a JSONL file.

    A torn last line (no trailing newline, from a crash mid-write) is treated as never
    written. A malformed line in the middle raises ``CorruptFile`` with its line number.
    """
    return list(iter_jsonl(path))


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    if not data:
        return
    lines = data.split(b"\n")
    # Everything after the last "\n" is an uncommitted tail.
    committed = lines[:-1]
    for i, raw in enumerate(committed, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptFile(f"{path}: line {i} is not valid JSON ({exc}).",
                              hint="Restore the file from a backup or delete the line.") from exc
        if not isinstance(rec, dict):
            raise CorruptFile(f"{path}: line {i} is not a JSON object.")
        yield rec


def repair_jsonl_tail(path: str | os.PathLike) -> int:
    """Truncate an uncommitted (torn) last line; returns the number of bytes removed."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return 0
    with open(fd, "rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return 0
        # Scan backwards for the last newline.
        pos, chunk = size, 4096
        while pos > 0:
            start = max(0, pos - chunk)
            fh.seek(start)
            buf = fh.read(pos - start)
            idx = buf.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        else:
            keep = 0
        if keep < size:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        return size - keep


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Append records durably: lock, repair a torn tail, write, fsync. Returns count.

    All or nothing: if the write fails (disk full, read-only), the file is cut back to its
    previous end, so a retry does not duplicate the records that did get written. A
    symbolic link at ``path`` is refused (``O_NOFOLLOW``).
    """
    path = Path(path)
    lines = [json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records]
    if not lines:
        return 0
    data = "".join(lines).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _lock(path):
            repair_jsonl_tail(path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                end = os.fstat(fd).st_size
                try:
                    _write_fd(fd, data)
                    os.fsync(fd)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, end)
                    raise
            finally:
                os.close(fd)
    except OSError as exc:
        raise _storage_error(exc, path) from exc
    return len(lines)


# --------------------------------------------------------------------------- manifest

def config_hash(obj: Any) -> str:
    """Stable short hash of a JSON-able config (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def read_manifest(run_dir: str | os.PathLike) -> dict:
    """The run's manifest, checked against its schema (``RunFileError`` when it is not an
    object or a stage entry has the wrong shape); a fresh one when there is none."""
    from selfguide.runs import schema

    return schema.load(run_dir, schema.MANIFEST) or {
        "name": Path(run_dir).name, "created": time.time(), "stages": {}}


def update_manifest(run_dir: str | os.PathLike, **fields: Any) -> dict:
    """Merge top-level ``fields`` into the manifest and write it atomically."""
    run_dir = Path(run_dir)
    with _lock(run_dir / MANIFEST_NAME):
        man = read_manifest(run_dir)
        man.update(fields)
        man["updated"] = time.time()
        atomic_write_json(run_dir / MANIFEST_NAME, man)
    return man


def set_stage(run_dir: str | os.PathLike, stage: str, status: str, **info: Any) -> dict:
    """Record a stage's status (``running``/``done``/``failed``/...) plus extra info."""
    run_dir = Path(run_dir)
    with _lock(run_dir / MANIFEST_NAME):
        man = read_manifest(run_dir)
        entry = dict(man.get("stages", {}).get(stage, {}))
        entry.update(info)
        entry["status"] = status
        entry["updated"] = time.time()
        man.setdefault("stages", {})[stage] = entry
        man["updated"] = time.time()
        atomic_write_json(run_dir / MANIFEST_NAME, man)
    return man
