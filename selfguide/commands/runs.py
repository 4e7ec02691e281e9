"""``selfguide runs``: list the runs in the workspace with their stages and sizes."""

from __future__ import annotations

import argparse

from selfguide.runs.rundir import RunDir

NAME = "runs"
HELP = "List runs in the workspace (method, task, stage status, kept examples)."
ORDER = 90


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")


def stage_states(run_dir, man: dict) -> dict[str, str]:
    """Each stage's manifest status, corrected by its job: a "running" stage whose worker
    died (kill -9) reads as the job does ("interrupted"), as the studio shows it."""
    from selfguide import jobs
    from selfguide.errors import SelfGuideError

    out = {}
    for k, v in (man.get("stages") or {}).items():
        state = v.get("status", "") if isinstance(v, dict) else ""
        if state == "running" and RunDir(run_dir).job_dir(k).is_dir():
            try:
                job = jobs.status(run_dir, k).state
            except SelfGuideError:  # an odd stage name or status: keep the manifest's word
                job = "running"
            if job not in jobs.ACTIVE:
                state = "interrupted" if job in ("interrupted", "none") else job
        out[k] = state
    return out


def summarize(run_dir) -> dict:
    from selfguide.runs.stale import stale_stages

    run = RunDir(run_dir)
    man = run.read_manifest()
    rep = run.read_report() or {}
    cfg = run.read_config()
    return {"name": run_dir.name, "method": cfg.get("method") or man.get("method") or "",
            "task": man.get("task") or rep.get("task") or "",
            "stages": stage_states(run_dir, man), "stale": stale_stages(run),
            "candidates": rep.get("candidates"), "kept": rep.get("kept"),
            "degenerate": rep.get("degenerate")}


def run(args: argparse.Namespace) -> int:
    import json

    from selfguide.errors import CorruptFile
    from selfguide.runs import store

    rows = []
    for name in store.list_runs():
        try:
            rows.append(summarize(store.resolve_run_dir(name)))
        except CorruptFile as exc:  # the damaged run says which file; the others still list
            rows.append({"name": name, "error": str(exc)})
    rc = 2 if any("error" in r for r in rows) else 0
    if args.json:
        print(json.dumps(rows, indent=2))
        return rc
    if not rows:
        print(f"no runs in {store.runs_dir()}")
        return 0
    print(f"{'run':<24} {'method':<12} {'task':<18} {'kept':>6}  stages")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<24} error: {r['error']}")
            continue
        stages = " ".join(f"{k}:{v}" + ("(stale)" if k in r["stale"] else "")
                          for k, v in r["stages"].items())
        kept = "" if r["kept"] is None else str(r["kept"])
        flag = " (degenerate labels)" if r.get("degenerate") else ""
        print(f"{r['name']:<24} {r['method']:<12} {r['task'][:18]:<18} {kept:>6}  {stages}{flag}")
        for stage, s in r["stale"].items():
            print(f"{'':<24} {stage} is stale: {s['changed']}; refresh: {s['refresh']}")
    return rc
