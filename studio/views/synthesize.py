"""The Synthesize page's generic parts: which method a run uses, the speed its last job
measured, and the job panel's live preview, dispatched to the method's own studio parts
(``studio.views.methods``).

What it does not do: draw a method's settings (the method's studio module does), generate
anything in the Streamlit process (the job does) or decide settings (the config dataclasses
validate them).
"""

from __future__ import annotations

from typing import Any

from selfguide import methods
from selfguide.runs.rundir import RunDir


def choices() -> dict[str, str]:
    """``{method name: one line}`` for the method picker, the default first."""
    return {m.name: m.summary or m.title for m in methods.all_methods()}


def run_method(run_dir: RunDir) -> str:
    """The method a run was generated with (its config.json), else the default method: the
    page's first choice, so that an existing run shows its own settings and counts."""
    try:
        name = run_dir.method
    except Exception:  # noqa: BLE001 - an unreadable config: the page shows its error elsewhere
        name = None
    return name if name in choices() else methods.default().name

def measured_speed(run: str, stage: str) -> float | None:
    """tokens/s of the run's last job of ``stage`` (its last progress event), if any."""
    from studio.app import jobs as sjobs
    try:
        evs = sjobs.events(run, stage)
    except Exception:  # noqa: BLE001 - no job yet, or an unreadable log: no measurement
        return None
    last = next((e for e in reversed(evs) if e.get("type") == "progress"
                 and e.get("tokens_per_s")), None)
    return float(last["tokens_per_s"]) if last else None


def live_preview(run_dir: RunDir, parts: Any) -> Any:
    """The job panel's extra: the newest rows the running job has committed."""
    def draw(evs: list[dict]) -> None:
        parts.preview(run_dir)

    return draw
