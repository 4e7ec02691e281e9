"""Progress events: an append-only ``events.jsonl`` per job, plus a stderr progress bar.

A worker reports with :class:`Progress` (counts, tokens/s, ETA) and :func:`emit` (any event:
``loss``, ``item``, ``log``, ``status``); :func:`delta_progress` is THE adapter from a
backend's cumulative ``progress(done, total, tokens)`` callback to those increments. The studio tails the file with
:func:`read_events`; nothing here talks to Streamlit. Each event is one JSON object with at
least ``t`` (unix time) and ``type``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfguide.runs.store import append_jsonl, read_jsonl


class EventLog:
    """Append events to a JSONL file (or drop them when ``path`` is None)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None

    def emit(self, type: str, **fields: Any) -> dict:
        ev = {"t": time.time(), "type": type, **fields}
        if self.path is not None:
            append_jsonl(self.path, [ev])
        return ev


def read_events(path: str | Path, types: tuple[str, ...] | None = None) -> list[dict]:
    evs = read_jsonl(path)
    return [e for e in evs if types is None or e.get("type") in types]


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def work_eta(done: float, total: float, elapsed: float) -> float | None:
    """Seconds left when ``done`` of ``total`` units of work took ``elapsed`` seconds.

    With work counted in what the time goes into (training tokens, not steps), a first
    step that is shorter or longer than the average still gives a fair rate; None until
    some work is done.
    """
    if done <= 0 or elapsed <= 0:
        return None
    return max(0.0, total - done) * elapsed / done


class Progress:
    """Counts work done in a stage; writes ``progress`` events and a stderr bar.

    ``update(n, tokens=…)`` adds finished units. Rate and ETA use the elapsed time since
    the first update of this process (resumed work counts as done, not as speed). Given
    ``work_total``, the ETA follows ``update(work=…)`` (e.g. tokens) instead of the units
    (:func:`work_eta`); :meth:`restart_clock` leaves one-off set-up time out of the rate.
    """

    def __init__(self, stage: str, total: int, *, events: EventLog | None = None,
                 done: int = 0, unit: str = "it", stream=sys.stderr, min_interval: float = 0.5,
                 work_total: float | None = None):
        self.stage, self.total, self.done, self.unit = stage, max(0, total), done, unit
        self.events = events or EventLog(None)
        self.stream = stream
        self.start = time.monotonic()
        self.start_done = done
        self.tokens = 0
        self.work_total, self.work = work_total, 0.0
        self.min_interval = min_interval
        self._last_print = 0.0

    def restart_clock(self) -> None:
        """Measure rate and ETA from now (after a warm-up that the rest will not repeat)."""
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    @property
    def rate(self) -> float:
        return (self.done - self.start_done) / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if self.work_total is not None:
            if self.total and self.done >= self.total:
                return 0.0
            return work_eta(self.work, self.work_total, self.elapsed)
        r = self.rate
        return (self.total - self.done) / r if r > 0 else None

    def update(self, n: int = 1, *, tokens: int = 0, work: float = 0.0, **extra: Any) -> None:
        self.done = min(self.total, self.done + n) if self.total else self.done + n
        self.tokens += tokens
        self.work += work
        tok_s = self.tokens / self.elapsed if self.elapsed > 0 else 0.0
        self.events.emit("progress", stage=self.stage, done=self.done, total=self.total,
                         elapsed=round(self.elapsed, 3), eta=self.eta,
                         tokens_per_s=round(tok_s, 2), **extra)
        now = time.monotonic()
        if self.stream is not None and (now - self._last_print >= self.min_interval
                                        or self.done >= self.total):
            self._last_print = now
            self._print(tok_s)

    def _print(self, tok_s: float) -> None:
        width = 28
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        msg = (f"\r{self.stage:>12} [{bar}] {self.done}/{self.total} {self.unit} "
               f"| {tok_s:6.1f} tok/s | ETA {format_eta(self.eta)}   ")
        try:
            self.stream.write(msg + ("\n" if self.done >= self.total else ""))
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        if self.stream is not None and self.done < self.total:
            try:
                self.stream.write("\n")
            except (OSError, ValueError):
                pass


def delta_progress(progress: Progress | None = None, *,
                   on_tokens: Callable[[int], None] | None = None,
                   ) -> Callable[[int, int, int], None]:
    """A backend ``progress(done, total, tokens)`` callback (cumulative within one
    ``generate`` call) that forwards increments: ``progress.update(new_done,
    tokens=new_tokens)`` and/or ``on_tokens(new_tokens)``. Make one per call."""
    last = {"done": 0, "tokens": 0}

    def cb(done: int, total: int, tokens: int) -> None:
        new_done, new_tokens = done - last["done"], tokens - last["tokens"]
        last.update(done=done, tokens=tokens)
        if progress is not None:
            progress.update(new_done, tokens=new_tokens)
        if on_tokens is not None:
            on_tokens(max(0, new_tokens))

    return cb
