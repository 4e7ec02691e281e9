"""Run names: which names are safe, and a valid name suggested from free text.

What it does: :func:`validate_run_name` refuses names that could escape the runs folder or
trip a file system (path separators, ``..``, reserved Windows names, over 64 characters);
:func:`slugify_run_name` turns a task file name or title into a valid suggestion.

What it does not do: resolve the run's folder or check that it exists
(:func:`selfguide.runs.store.resolve_run_dir`).
"""

from __future__ import annotations

import hashlib
import re

from selfguide.errors import InvalidRunName

RUN_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}


def validate_run_name(name: str) -> str:
    """Return ``name`` if it is a safe run name, else raise ``InvalidRunName``.

    Allowed: 1-64 characters from ``A-Z a-z 0-9 . _ -``, starting with a letter or digit,
    not ending with a dot, no ``..``, not a Windows device name.
    """
    # fullmatch: ``$`` alone would accept a trailing newline ("run\n").
    if not isinstance(name, str) or not RUN_NAME_RE.fullmatch(name) or ".." in name \
            or name.endswith(".") or name.split(".")[0].lower() in _WINDOWS_RESERVED:
        raise InvalidRunName(
            f"Invalid run name {name!r}.",
            hint="Use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit "
                 "(for example 'sentiment-1').",
        )
    return name


def slugify_run_name(text: str) -> str:
    """Turn free text into a valid run name (used for suggestions, never for validation)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:64] or "run"
    slug = re.sub(r"\.{2,}", ".", slug).rstrip(".")
    if not slug[0].isalnum():
        slug = "r" + slug
    try:
        return validate_run_name(slug[:64])
    except InvalidRunName:
        return "run-" + hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:8]
