"""What every stage of a run is handed besides its settings: :class:`StageContext`.

What it does: bundles the model (``generator``), whether it is used in chat form, the
event log, the cancel check, the per-item callback and the progress-bar stream, so stage
functions take one argument for them instead of five keywords threaded one by one;
:meth:`StageContext.progress` opens a progress bar on them.

What it does not do: load a model, decide anything a stage computes, or own the run's
files (``selfguide.runs``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selfguide.runs.events import EventLog, Progress

if TYPE_CHECKING:  # pragma: no cover
    from selfguide.backends import Generator

ItemCallback = Callable[[dict], None]


@dataclass(frozen=True)
class StageContext:
    """The model and the listeners of one run of a method's stages.

    ``stream``: where progress bars go; ``...`` means stderr at call time (so test capture
    and redirection work), None no bar. ``chat`` is off for a model whose tokenizer has no
    chat template (a base model: its "chat form" would be plain text again, so labelling
    would try, and name, the same protocol twice).
    """

    generator: Generator
    chat: bool = True
    events: EventLog = field(default_factory=lambda: EventLog(None))
    cancel: Callable[[], bool] | None = None
    on_item: ItemCallback | None = None
    stream: Any = ...

    def __post_init__(self) -> None:
        from selfguide.backends.rendering import chat_for

        object.__setattr__(self, "chat", chat_for(self.generator, self.chat))

    @property
    def out(self) -> Any:
        """The progress-bar stream now (``...`` resolved to the current stderr)."""
        return sys.stderr if self.stream is ... else self.stream

    def progress(self, stage: str, total: int, **kw: Any) -> Progress:
        """A progress bar for ``stage`` that reports to the events and the stream."""
        return Progress(stage, total, events=self.events, stream=self.out, **kw)
