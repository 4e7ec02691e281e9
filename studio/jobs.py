"""Start, poll and cancel background jobs from the studio: a thin layer over ``selfguide.jobs``.

What it does: calls ``selfguide.jobs.start/status/cancel/events`` (looked up at call time
so tests can replace them) with argv lists built by ``selfguide.cliargs.job_argv``, and turns
job status objects and event lists into plain values the pages draw (state, progress
fraction, ETA text, loss points).

What it does not do: run any stage in the Streamlit process. Long work always runs in a
subprocess that owns its files; a browser refresh re-attaches by reading them again.
"""

from __future__ import annotations

from typing import Any

from selfguide.events import format_eta

ACTIVE_STATES = ("running", "starting", "queued")
DONE_STATES = ("finished",)
BAD_STATES = ("failed", "cancelled", "interrupted")


def _lib():
    from selfguide import jobs  # the reliability engineer's module; imported lazily

    return jobs


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


# --------------------------------------------------------------------------- commands

def start(run: str, stage: str, argv: list[str]) -> Any:
    """Start ``python -m selfguide *argv`` as the ``stage`` job of ``run``.

    Raises ``JobAlreadyRunning`` (a ``SelfGuideError``) when one is already running; the
    pages show it as a message, so a double click never starts two workers.
    """
    return _lib().start(run, stage, list(argv))


def status(run: str, stage: str) -> Any:
    return _lib().status(run, stage)


def cancel(run: str, stage: str) -> Any:
    return _lib().cancel(run, stage)


def events(run: str, stage: str) -> list[dict]:
    return list(_lib().events(run, stage) or [])


# --------------------------------------------------------------------------- views

_STAGE_TITLES = {"train": "Training", "synthesize": "Synthesis", "self-instruct": "Synthesis",
                 "eval": "Evaluation", "export": "The export", "export-model": "The GGUF export"}


def stage_title(stage: str) -> str:
    """A job's stage as a sentence starts with it ("Training was cancelled.")."""
    return _STAGE_TITLES.get(stage, f"The {stage} job")


def state_of(st_obj: Any) -> str:
    return str(_get(st_obj, "state", "none") or "none")


def is_active(st_obj: Any) -> bool:
    return state_of(st_obj) in ACTIVE_STATES


def error_of(st_obj: Any) -> str | None:
    return _get(st_obj, "error")


def progress_view(st_obj: Any, evs: list[dict] | None = None) -> dict:
    """``{fraction, text}`` for a progress bar from the last ``progress`` event."""
    prog = _get(st_obj, "progress")
    if not prog and evs:
        prog = next((e for e in reversed(evs) if e.get("type") == "progress"), None)
    if not prog:
        return {"fraction": 0.0, "text": "waiting for the first progress report…"}
    done, total = prog.get("done") or 0, prog.get("total") or 0
    frac = min(1.0, done / total) if total else 0.0
    parts = [f"{prog.get('stage', '')} {done}/{total}".strip()]
    if prog.get("tokens_per_s"):
        parts.append(f"{float(prog['tokens_per_s']):.1f} tokens/s")
    parts.append(f"ETA {format_eta(prog.get('eta'))}")
    if prog.get("elapsed") is not None:
        parts.append(f"elapsed {format_eta(prog.get('elapsed'))}")
    return {"fraction": frac, "text": " · ".join(parts)}


def loss_points(evs: list[dict]) -> list[dict]:
    """``[{step, loss, kind}]`` from training events (``loss`` / ``eval_loss`` fields)."""
    pts = []
    for e in evs:
        step = e.get("step")
        if step is None:
            continue
        if e.get("loss") is not None:
            pts.append({"step": int(step), "loss": float(e["loss"]), "kind": "train"})
        if e.get("eval_loss") is not None:
            pts.append({"step": int(step), "loss": float(e["eval_loss"]), "kind": "validation"})
    return pts
