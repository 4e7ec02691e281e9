"""The user's documents as context for SELF-GUIDE's stage 1 (issue 36).

What it does: :func:`read_documents` reads folders or files -- ``.txt``/``.md`` (UTF-8),
``.pdf`` (through ``pypdf``) and ``.docx`` (through ``python-docx``) -- and cuts them into
passages of whole paragraphs, about :data:`PASSAGE_WORDS` words each (a longer paragraph is
cut at sentence ends, then at words). :func:`save_passages` copies the passages into the
run (``passages.jsonl``, atomically); :func:`load_passages` reads them back and
:func:`passage_for` picks the passage one stage-1 prompt is written on, walking a seeded
shuffle of them by round and prompt, so a resumed run picks the same one.

Errors are ``DatasetError`` naming the file and the reason (a PDF that cannot be read, a
binary ``.txt``, nothing readable). It does not write prompts or generate anything
(:mod:`selfguide.methods.selfguide.prompts`, :mod:`selfguide.methods.selfguide.stages`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
from pathlib import Path

from selfguide.errors import DatasetError
from selfguide.runs.rundir import as_run
from selfguide.seeding import derive_seed

SUFFIXES = (".txt", ".md", ".pdf", ".docx")
PASSAGE_WORDS = 120
MAX_FILES = 500
MAX_BYTES = 100 * 2**20
PASSAGES_FILE = "passages.jsonl"


@dataclasses.dataclass(frozen=True)
class Documents:
    files: tuple[str, ...]
    sha256: str
    passages: tuple[dict, ...]  # {"id", "file", "text"}

    def settings(self) -> dict:
        """What config.json records (the content hash decides a resume, not the paths)."""
        return {"files": list(self.files), "sha256": self.sha256,
                "passages": len(self.passages), "passage_words": PASSAGE_WORDS}


def _files(paths: list[str | os.PathLike]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file()
                          and f.suffix.lower() in SUFFIXES and not f.name.startswith("."))
        elif p.is_file():
            if p.suffix.lower() not in SUFFIXES:
                raise DatasetError(f"Document {p}: unsupported type {p.suffix or '(none)'!r}.",
                                   hint="Use .txt, .md, .pdf or .docx files.")
            out.append(p)
        else:
            raise DatasetError(f"Document {p} not found.")
    if not out:
        raise DatasetError("No .txt, .md, .pdf or .docx document in "
                           + ", ".join(str(p) for p in paths) + ".")
    if len(out) > MAX_FILES:
        raise DatasetError(f"{len(out)} documents; at most {MAX_FILES}.",
                           hint="Point --documents at a smaller folder.")
    if sum(f.stat().st_size for f in out) > MAX_BYTES:
        raise DatasetError(f"The documents are larger than {MAX_BYTES // 2**20} MB together.")
    return out


def _pdf_text(path: Path) -> str:
    try:
        from pypdf import PdfReader
    except ImportError as exc:
        raise DatasetError(f"Document {path}: reading PDF needs the 'pypdf' package.",
                           hint="pip install pypdf") from exc
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise DatasetError(f"Document {path} cannot be read: the PDF is encrypted.",
                               hint="Save an unencrypted copy.")
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except DatasetError:
        raise
    except Exception as exc:  # pypdf raises many types for a damaged file
        raise DatasetError(f"Document {path} cannot be read as PDF: {exc}.") from exc


def _docx_text(path: Path) -> str:
    try:
        import docx
    except ImportError as exc:
        raise DatasetError(f"Document {path}: reading DOCX needs the 'python-docx' package.",
                           hint="pip install python-docx") from exc
    try:
        return "\n\n".join(p.text for p in docx.Document(str(path)).paragraphs)
    except Exception as exc:  # a zip that is not a Word file, a damaged part, ...
        raise DatasetError(f"Document {path} cannot be read as DOCX: {exc}.") from exc


def document_text(path: Path) -> str:
    """The plain text of one document."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _pdf_text(path)
    if suffix == ".docx":
        return _docx_text(path)
    data = path.read_bytes()
    if b"\x00" in data[:65536]:
        raise DatasetError(f"Document {path} looks binary (it holds NUL bytes).")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"Document {path} is not UTF-8 (byte {exc.start}).") from exc


def _pieces(paragraph: str, words: int) -> list[str]:
    """A paragraph cut into pieces of at most ``words`` words (at sentence ends first)."""
    if len(paragraph.split()) <= words:
        return [paragraph]
    out, cur = [], []
    for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
        toks = sentence.split()
        while len(toks) > words:  # one very long sentence: cut at words
            out.append(" ".join(toks[:words]))
            toks = toks[words:]
        if cur and len(cur) + len(toks) > words:
            out.append(" ".join(cur))
            cur = []
        cur += toks
    if cur:
        out.append(" ".join(cur))
    return out


def chunk(text: str, words: int = PASSAGE_WORDS) -> list[str]:
    """Passages of whole paragraphs (blank-line separated), about ``words`` words each."""
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    pieces = [x for p in paras if p for x in _pieces(p, words)]
    out, cur = [], []
    for piece in pieces:
        n = len(piece.split())
        if cur and sum(len(c.split()) for c in cur) + n > words:
            out.append("\n".join(cur))
            cur = []
        cur.append(piece)
    if cur:
        out.append("\n".join(cur))
    return out


def read_documents(paths: list[str | os.PathLike]) -> Documents:
    """Every document under ``paths`` cut into passages (see the module docstring)."""
    files = _files(paths)
    h = hashlib.sha256()
    passages: list[dict] = []
    for f in files:
        data = f.read_bytes()
        h.update(f.name.encode() + b"\0" + hashlib.sha256(data).digest())
        for text in chunk(document_text(f)):
            passages.append({"id": f"passage-{len(passages) + 1:05d}", "file": f.name,
                             "text": text})
    if not passages:
        raise DatasetError("The documents hold no text (" + ", ".join(f.name for f in files)
                           + ").", hint="A scanned PDF has no text layer; OCR it first.")
    return Documents(files=tuple(str(f.resolve()) for f in files), sha256=h.hexdigest(),
                     passages=tuple(passages))


def save_passages(run_dir: str | os.PathLike, passages: list[dict]) -> None:
    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in passages)
    run = as_run(run_dir)
    run.write_file(run.path / PASSAGES_FILE, text)


def load_passages(run_dir: str | os.PathLike) -> list[dict]:
    run = as_run(run_dir)
    path = run.path / PASSAGES_FILE
    return run.read_log(path) if path.is_file() else []


def passage_for(passages: list[dict], seed: int, rnd: int, prompt: int,
                per_round: int = 0) -> dict | None:
    """The passage stage-1 prompt ``prompt`` of round ``rnd`` shows (None without any).

    The prompts walk a seeded shuffle of the passages (``per_round`` prompts a round), so
    every passage is used before any is used twice; a resumed run picks the same one."""
    if not passages:
        return None
    order = random.Random(derive_seed(seed, "passages")).sample(range(len(passages)),
                                                              len(passages))
    return passages[order[(rnd * max(per_round, 1) + prompt) % len(passages)]]


__all__ = ["PASSAGES_FILE", "Documents", "chunk", "document_text", "load_passages",
           "passage_for", "read_documents", "save_passages"]
