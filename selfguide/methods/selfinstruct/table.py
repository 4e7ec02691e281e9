"""The Self-Instruct candidates table, training records and report, from committed rounds.

What it does: turns the round records of ``selfinstruct.jsonl`` into the candidates table
(one row per rejected instruction and one per instance of an accepted one; DESIGN.md
columns plus ``instruction``, ``nearest``, ``nearest_score``, ``is_classification``,
``instruction_id``), re-applying the instance filters and manual overrides; builds the
training records (``{"id", "prompt", "completion", "input", "output"[, "label"]}`` with
``prompt = prompts.instruction_prompt(instruction, input)``, the SELF-GUIDE format) and
the report (instruction and instance funnels); writes ``candidates.parquet``,
``dataset/train.jsonl`` and ``dataset/report.json`` atomically.

What it does not do: generate, decide which instructions join the pool (that happened in
:mod:`selfguide.methods.selfinstruct.pipeline`), or train.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from selfguide.methods import candidates
from selfguide.methods.selfinstruct.config import SelfInstructFilterConfig
from selfguide.methods.selfinstruct.filters import (
    INSTANCE_FILTERS,
    INSTRUCTION_FILTERS,
    first_failure,
    instance_checks,
)
from selfguide.runs import dataset
from selfguide.runs.rundir import as_run

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FILTER_COLUMNS = INSTRUCTION_FILTERS + INSTANCE_FILTERS + ("manual",)


def candidate_rows(rounds: Sequence[dict], fcfg: SelfInstructFilterConfig,
                   overrides: dict[str, bool] | None = None) -> list[dict]:
    """One row per rejected instruction and per instance of an accepted one (pure).

    Instance filters are re-applied from the stored instances, so changing an instance
    threshold needs no regeneration. An accepted instruction without any parsable instance
    gets one row with ``drop_reason="instances"``. ``overrides`` (``overrides.json``,
    ``{id: keep}``): True keeps a row whatever the filters say, False drops it (``manual``).
    """
    rows = []
    for rec in rounds:
        for c in rec["instructions"]:
            base = {"method": "selfinstruct", "round": rec["round"], "prompt_id": c["prompt_id"],
                    "instruction_id": c["id"], "instruction": c["instruction"],
                    "nearest": c["nearest"], "nearest_score": float(c["nearest_score"]),
                    "is_classification": bool(c.get("is_classification", False)),
                    "samples": [], "votes": "{}", "vote_share": math.nan}
            ichecks = dict(c["checks"])
            if not c["accepted"]:
                rows.append(_row(base, c["id"], "", "", "", ichecks, {}))
                continue
            pairs = [(x["input"], x["output"]) for x in c.get("instances", [])]
            if not pairs:
                rows.append(_row(base, c["id"], "", "", c.get("instances_raw", ""), ichecks,
                                 {"instances": False}))
                continue
            checked = zip(pairs, instance_checks(pairs, fcfg), strict=True)
            for m, ((inp, out), checks) in enumerate(checked):
                rows.append(_row(base, f"{c['id']}-i{m:02d}", inp, out,
                                 c.get("instances_raw", ""), ichecks, checks))
    for row in rows:
        decision = (overrides or {}).get(row["id"])
        if decision is not None:
            row["f_manual"] = bool(decision)
            row["drop_reason"] = "" if decision else "manual"
            row["kept"] = bool(decision)
    return rows


def _row(base: dict, rid: str, inp: str, out: str, raw: str, ichecks: dict,
         checks: dict) -> dict:
    allc = {name: True for name in FILTER_COLUMNS}
    allc.update(ichecks)
    allc.update(checks)
    reason = first_failure({n: allc[n] for n in FILTER_COLUMNS})
    row = {"id": rid, **base, "raw": raw, "input": inp, "output": out,
           "target_label": out if base["is_classification"] else "",
           "label": out.strip() if base["is_classification"] and out else ""}
    row.update({f"f_{n}": bool(allc[n]) for n in FILTER_COLUMNS})
    row.update(drop_reason=reason, kept=reason == "")
    return row


def candidates_table(rounds: Sequence[dict], fcfg: SelfInstructFilterConfig,
                     overrides: dict[str, bool] | None = None) -> pd.DataFrame:
    """The candidates table (DESIGN.md columns + instruction, nearest, nearest_score,
    is_classification, instruction_id)."""
    import pandas as pd

    cols = [*candidates.COLUMNS, "label", *[f"f_{n}" for n in FILTER_COLUMNS],
            "drop_reason", "kept", "instruction", "nearest", "nearest_score",
            "is_classification", "instruction_id"]
    return pd.DataFrame(candidate_rows(rounds, fcfg, overrides), columns=cols)


def build_records(df: pd.DataFrame) -> list[dict]:
    """Training records of the kept rows (same format as the SELF-GUIDE dataset)."""
    from selfguide.task.prompts import instruction_prompt as record_prompt

    recs = []
    for row in df[df["kept"]].itertuples(index=False) if len(df) else []:
        out = row.output.strip()
        rec = {"id": row.id, "prompt": record_prompt(row.instruction, row.input),
               "completion": out, "input": row.input, "output": out}
        if row.is_classification:
            rec["label"] = out
        recs.append(rec)
    return recs


def funnel(df: pd.DataFrame) -> list[dict]:
    """Rows remaining after each filter, in order (``generated`` = all rows)."""
    return candidates.funnel(df, FILTER_COLUMNS)


def build_report(rounds: Sequence[dict], df: pd.DataFrame, n_records: int) -> dict:
    """Instruction-level and instance-level funnels plus counts for the studio and CLI."""
    instr = [c for rec in rounds for c in rec["instructions"]]
    acc = [c for c in instr if c["accepted"]]
    reasons = Counter(first_failure(c["checks"]) for c in instr if not c["accepted"])
    inst_rows = df[df["f_instances"] & df["instruction_id"].isin({c["id"] for c in acc})] \
        if len(df) else df
    return {
        "method": "selfinstruct",
        "rounds": len(rounds),
        "prompts": sum(len(rec["prompts"]) for rec in rounds),
        "instructions": {"generated": len(instr), "accepted": len(acc),
                         "rejected": {k: reasons.get(k, 0) for k in INSTRUCTION_FILTERS},
                         "classification": sum(bool(c.get("is_classification")) for c in acc)},
        "instances": {"generated": len(inst_rows),
                      "kept": int(df["kept"].sum()) if len(df) else 0,
                      "dropped": {k: int(v) for k, v in Counter(
                          inst_rows["drop_reason"]).items() if k} if len(inst_rows) else {}},
        "candidates": len(df), "kept": int(df["kept"].sum()) if len(df) else 0,
        "train": n_records, "val": 0,
        "funnel": funnel(df),
        "drop_reasons": {k: int(v) for k, v in Counter(df["drop_reason"]).items() if k}
        if len(df) else {},
        "filter_order": list(FILTER_COLUMNS),
    }


def write_outputs(run_dir: str | os.PathLike, rounds: Sequence[dict],
                  fcfg: SelfInstructFilterConfig) -> dict:
    """candidates.parquet, dataset/train.jsonl and dataset/report.json, each atomically
    (manual decisions and repairs from ``overrides.json`` applied; the table keeps the
    generated values)."""
    run = as_run(run_dir)
    df = candidates_table(rounds, fcfg, run.read_overrides())
    candidates.write(run, df)
    recs = build_records(candidates.apply_repairs(df, run.read_repairs(), label_is_output=True))
    run.write_records("train", dataset.jsonl(recs))
    report = build_report(rounds, df, len(recs))
    run.write_report(report)
    return report


def format_report(report: dict) -> str:
    """The funnel as a small text table."""
    ins, inst = report["instructions"], report["instances"]
    lines = [f"rounds: {report['rounds']} ({report['prompts']} prompts)",
             f"instructions generated: {ins['generated']}"]
    left = ins["generated"]
    for name, n in ins["rejected"].items():
        left -= n
        lines.append(f"  - {name:<16} -{n:<6} {left}")
    lines.append(f"instructions accepted: {ins['accepted']} "
                 f"({ins['classification']} classification)")
    lines.append(f"instances generated: {inst['generated']}")
    left = inst["generated"]
    for name, n in sorted(inst["dropped"].items(), key=lambda kv: -kv[1]):
        left -= n
        lines.append(f"  - {name:<16} -{n:<6} {left}")
    lines.append(f"training examples: {report['train']}")
    if report.get("warning"):
        lines.append(f"warning: {report['warning']}")
    return "\n".join(lines)
