"""Start, poll and cancel background jobs from the studio: a thin layer over ``selfguide.jobs``.

What it does: calls ``selfguide.jobs.start/status/cancel/events`` (looked up at call time
so tests can replace them) with argv lists built by ``selfguide.settings.cli.job_argv``, and turns
job status objects and event lists into plain values the pages draw (state, progress
fraction, ETA text, loss points).

What it does not do: run any stage in the Streamlit process. Long work always runs in a
subprocess that owns its files; a browser refresh re-attaches by reading them again.
"""

from __future__ import annotations

from typing import Any

from selfguide import methods
from selfguide.runs.events import format_eta

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

_STAGE_TITLES = {"train": "Training",
                 "eval": "Evaluation", "export": "The export", "export-model": "The GGUF export",
                 "relabel": "The relabel round"}


def stage_title(stage: str) -> str:
    """A job's stage as a sentence starts with it ("Training was cancelled.")."""
    if stage in _STAGE_TITLES:
        return _STAGE_TITLES[stage]
    return "Synthesis" if methods.by_stage(stage) else f"The {stage} job"


def state_of(st_obj: Any) -> str:
    return str(_get(st_obj, "state", "none") or "none")


def is_active(st_obj: Any) -> bool:
    return state_of(st_obj) in ACTIVE_STATES


def is_silent(st_obj: Any) -> bool:
    """Alive but its heartbeat is late: busy on a loaded machine, or hung. It may resume."""
    return state_of(st_obj) == "interrupted" and _get(st_obj, "reason") == "stale"


def is_watched(st_obj: Any) -> bool:
    """Worth polling: running, or silent (it may come back, or be cancelled)."""
    return is_active(st_obj) or is_silent(st_obj)


def error_of(st_obj: Any) -> str | None:
    return _get(st_obj, "error")


# The stages a job goes through, in order, as its events name them (``stage`` / progress
# ``stage`` fields), and how the studio names them.
# Synthesis jobs take theirs from their method (``Method.job_stages``).
STAGE_WORDS = {"train": "training", "eval": "evaluating"}


def job_stages(job: str) -> tuple[str, ...]:
    """The stages of a ``job`` in order (a synthesis method's, else none)."""
    method = methods.by_stage(job)
    return tuple(method.job_stages) if method else ()


def stage_words(name: str) -> str:
    """How the studio names a stage of a job ("writing new inputs")."""
    for method in methods.all_methods():
        if name in method.job_stages:
            return method.job_stages[name]
    return STAGE_WORDS.get(name, name)


def _elapsed(st_obj: Any, evs: list[dict]) -> float | None:
    """Seconds since the job started (its status, else its first event): one clock for
    the whole job, not reset between stages."""
    import time

    start = _get(st_obj, "started") or (evs[0].get("t") if evs else None)
    return None if start is None else max(0.0, time.time() - float(start))


def _position(job: str, name: str) -> tuple[int, int] | None:
    """``(i, n)``: stage ``name`` is stage i of the job's n (None: not a known stage)."""
    order = job_stages(job)
    return (order.index(name) + 1, len(order)) if name in order else None


def _before_progress(job: str, started: dict | None, evs: list[dict], elapsed: str) -> dict:
    """What the job does before a stage's first progress report (loading the model,
    checks, the labelling evidence), with its newest log line."""
    if started is None:
        what, frac = "loading the model and checking the run", 0.0
    else:
        name = str(started.get("stage"))
        pos = _position(job, name)
        what = (f"stage {pos[0]} of {pos[1]}: " if pos and pos[1] > 1 else "") + \
            f"{stage_words(name)} — getting ready"
        frac = (pos[0] - 1) / pos[1] if pos else 0.0
    log = next((e for e in reversed(evs) if e.get("type") == "log"), None)
    if log is not None and (started is None or log.get("t", 0) >= started.get("t", 0)):
        what += f" ({str(log.get('message', ''))[:90]})"
    return {"fraction": frac, "text": f"{what} · elapsed {elapsed}"}


def _latest(evs: list[dict], pred) -> tuple[int, dict | None]:
    for i in range(len(evs) - 1, -1, -1):
        if pred(evs[i]):
            return i, evs[i]
    return -1, None


def progress_view(st_obj: Any, evs: list[dict] | None = None, job: str = "") -> dict:
    """``{fraction, text}`` for a progress bar over the whole job: the stage it is in
    (``stage i of n``), that stage's counts and ETA, and the job's elapsed time."""
    evs = evs or []
    ip, prog = _latest(evs, lambda e: e.get("type") == "progress")
    i_s, started = _latest(evs, lambda e: e.get("type") == "stage" and e.get("state") == "start")
    prog = prog or _get(st_obj, "progress")
    elapsed = format_eta(_elapsed(st_obj, evs))
    if not prog or (started is not None and i_s > ip
                    and started.get("stage") != (prog or {}).get("stage")):
        return _before_progress(job, started, evs, elapsed)
    done, total = prog.get("done") or 0, prog.get("total") or 0
    frac = min(1.0, done / total) if total else 0.0
    name = str(prog.get("stage", "") or "")
    i, n = _position(job, name) or (1, 1)
    parts = [f"{name} {done}/{total}".strip()]
    if n > 1:
        parts.insert(0, f"stage {i} of {n}")
    if prog.get("tokens_per_s"):
        parts.append(f"{float(prog['tokens_per_s']):.1f} tokens/s")
    eta = format_eta(prog.get("eta"))
    parts.append(f"ETA {eta}" if i == n else f"ETA of this stage {eta} (then "
                 f"{stage_words(job_stages(job)[i])})")
    parts.append(f"elapsed {elapsed}")
    return {"fraction": (i - 1 + frac) / n, "text": " · ".join(parts)}


def done_text(st_obj: Any, evs: list[dict] | None = None) -> str:
    """A finished job's bar text: finished, and how long it took."""
    evs = evs or []
    end = _get(st_obj, "ended") or \
        (evs[-1].get("t") if evs else None)
    start = _get(st_obj, "started") or (evs[0].get("t") if evs else None)
    took = (f" · took {format_eta(float(end) - float(start))}"
            if start is not None and end is not None else "")
    return "finished" + took


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
