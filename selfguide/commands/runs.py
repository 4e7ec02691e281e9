"""``selfguide runs``: list the runs in the workspace with their stages and sizes."""

from __future__ import annotations

import argparse

NAME = "runs"
HELP = "List runs in the workspace (method, task, stage status, kept examples)."
ORDER = 90


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")


def summarize(run_dir) -> dict:
    """The JSON row of one run (:func:`selfguide.runs.summary.summarize`)."""
    from selfguide.runs.summary import summarize as summary

    s = summary(run_dir)
    return {"name": s.name, "method": s.method, "task": s.task, "stages": s.states,
            "stale": s.stale, "candidates": s.candidates, "kept": s.kept,
            "degenerate": s.degenerate}


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
