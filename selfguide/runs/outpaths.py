"""Safe destinations for files written outside the workspace (export, merge, ...).

What it does: decides whether a user-given output path may be written, and writes it without
ever following or replacing a symbolic link, a device node, a FIFO, a socket or a
directory. The rules, the same for every writer:

- a missing path is fine (its parent must be an existing directory, not a link);
- an existing *regular file* is replaced only with ``force`` (atomically: temp file in the
  same directory + ``os.replace``);
- anything else that exists (a symlink, even to a regular file; ``/dev/full``; a FIFO; a
  directory where a file is wanted) is refused;
- a directory destination must be missing or empty; a non-empty one is refused (``force``
  does not delete anyone's files), a file or link in its place is refused.

Every refusal is an :class:`~selfguide.errors.OutputPathError` naming the path and saying
what to do. This module does not decide what is written (the commands do).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from selfguide.errors import OutputPathError


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise OutputPathError(f"Cannot inspect output path {path!r}: "
                              f"{getattr(exc, 'strerror', None) or exc}.") from exc


def _check_parent(path: Path) -> None:
    parent = path.parent
    st = _lstat(parent)
    if st is None:
        raise OutputPathError(f"The folder of the output path {path} does not exist.",
                              hint=f"Create {parent} first or choose another --output.")
    if not stat.S_ISDIR(os.stat(parent).st_mode):
        raise OutputPathError(f"The output path {path} is inside {parent}, which is not a "
                              "directory.", hint="Choose an output path in a directory.")


def check_output_file(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Return ``path`` (absolute, not resolved) if a file may be written there; else raise.

    Raises:
        OutputPathError: the path is a link, a directory, a device/FIFO/socket, or an
            existing regular file without ``force``.
    """
    p = Path(os.path.abspath(Path(path).expanduser()))
    st = _lstat(p)
    if st is None:
        _check_parent(p)
        return p
    if stat.S_ISREG(st.st_mode):
        if not force:
            raise OutputPathError(f"{p} already exists.",
                                  hint="Pass --force to replace it, or choose another path.")
        _check_parent(p)
        return p
    raise OutputPathError(f"Refusing to write {p}: it is {_kind(st.st_mode)}, not a regular "
                          "file.", hint="Choose a new file name; selfguide never replaces "
                                        "links, devices, FIFOs or directories.")


def check_output_dir(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Return ``path`` (absolute) if a directory may be written there (missing or empty).

    ``force`` is accepted for symmetry with :func:`check_output_file` but never empties a
    directory: a non-empty directory is always refused.
    """
    del force  # never deletes: a non-empty directory may hold someone's files
    p = Path(os.path.abspath(Path(path).expanduser()))
    st = _lstat(p)
    if st is None:
        _check_parent(p)
        return p
    if not stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"Refusing to write into {p}: it is {_kind(st.st_mode)}, not a "
                              "directory." if not stat.S_ISREG(st.st_mode) else
                              f"{p} is a file; a directory is needed here.",
                              hint="Choose a new directory name.")
    try:
        nonempty = any(os.scandir(p))
    except OSError as exc:
        raise OutputPathError(f"Cannot read the output directory {p}: "
                              f"{exc.strerror or exc}.") from exc
    if nonempty:
        raise OutputPathError(f"{p} exists and is not empty.",
                              hint="Choose a new (or empty) directory.")
    return p


def write_output_bytes(path: str | os.PathLike, data: bytes, *, force: bool = False) -> Path:
    """Write ``data`` to a checked output file: temp sibling + fsync + ``os.replace``.

    The target is checked again right before the rename, so a link or device put in its
    place meanwhile is not replaced.
    """
    p = check_output_file(path, force=force)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise OutputPathError(f"Cannot write {p}: {exc.strerror or exc}.") from exc
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        check_output_file(p, force=force)
        os.replace(tmp, p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputPathError(f"Cannot write {p}: {exc.strerror or exc}.") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p


def write_output_text(path: str | os.PathLike, text: str, *, force: bool = False) -> Path:
    return write_output_bytes(path, text.encode("utf-8"), force=force)


def staging_dir(final: Path) -> Path:
    """A fresh hidden sibling of ``final`` to build a directory in before :func:`publish_dir`."""
    try:
        return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except OSError as exc:
        raise OutputPathError(f"Cannot write next to {final}: {exc.strerror or exc}.") from exc


def publish_dir(tmp: Path, final: Path) -> Path:
    """Move a finished staging directory to ``final`` (which must still be missing/empty)."""
    import shutil

    try:
        check_output_dir(final)
        if final.exists():
            final.rmdir()  # empty, checked just above
        os.rename(tmp, final)
    except (OSError, OutputPathError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OutputPathError):
            raise
        raise OutputPathError(f"Cannot move the output into {final}: "
                              f"{exc.strerror or exc}.") from exc
    return final
