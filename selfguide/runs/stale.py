"""Stale stages: a stage whose inputs changed after it ran, with what changed and the
command that refreshes it.

What it does: compares what a finished stage recorded it read with what the run holds now:
training records the dataset's fingerprint (``train/train_config.json`` ``data``), an
evaluation the adapter's (``eval/metrics.json`` ``inputs.adapter``); a re-filter after a
training makes the training stale, a retraining (or a stale training) the evaluation.
Which stage reads what another writes is ``selfguide.jobs.state.INPUT_WRITERS``; this
module only judges the recorded fingerprints.

What it does not do: refuse overlapping stages (``selfguide.jobs.check_inputs_idle``) or
run anything.
"""

from __future__ import annotations

from selfguide.runs.rundir import RunDir


def stale_stages(run: RunDir) -> dict[str, dict[str, str]]:
    """``{stage: {"changed": what, "refresh": command}}`` for each stale stage (``train``,
    ``eval``); empty when every finished stage is current. Damaged files raise
    ``RunFileError`` as their readers do."""
    out: dict[str, dict[str, str]] = {}
    trained = run.read_train_config() if run.has_adapter() else None
    if trained and trained.get("data") and trained["data"] != run.dataset_fingerprint():
        out["train"] = {"changed": "the dataset changed after this training (re-filtered "
                                   "or re-synthesized)",
                        "refresh": f"selfguide train --run {run.name}"}
    metrics = run.read_metrics()
    if metrics is not None:
        seen = (metrics.get("inputs") or {}).get("adapter")
        now = run.adapter_fingerprint()
        if seen and seen != now:
            changed = ("the adapter was retrained after this evaluation" if now
                       else "the adapter it evaluated is gone")
        elif "train" in out:
            changed = "its training is stale (the dataset changed)"
        else:
            changed = ""
        if changed:
            refresh = f"selfguide eval --run {run.name}"
            if "train" in out:
                refresh = f"{out['train']['refresh']}, then {refresh}"
            out["eval"] = {"changed": changed, "refresh": refresh}
    return out


def describe(run: RunDir, stale: dict[str, dict[str, str]] | None = None) -> list[str]:
    """One line per stale stage: ``train is stale: ... (refresh: selfguide train ...)``."""
    stale = stale_stages(run) if stale is None else stale
    return [f"{stage} is stale: {s['changed']} (refresh: {s['refresh']})"
            for stage, s in stale.items()]
