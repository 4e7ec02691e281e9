"""SELF-GUIDE's candidates table and dataset: stage-1 rows joined with stage-2 samples.

What it does: :func:`build_table` joins ``inputs.jsonl`` and ``annotations.jsonl`` into the
candidates table (votes, share, winner, mapped label, near-duplicate scores);
:func:`load_candidates` reads ``candidates.parquet`` (or rebuilds it from the JSONL files);
:func:`finish` applies the filters and the manual overrides and writes the table and the
dataset; :func:`build_records` turns kept rows into training records whose ``prompt`` is
exactly :func:`selfguide.task.prompts.task_prompt` -- the prompt evaluation uses -- and whose
``completion`` is the label (classification) or the voted answer.

What it does not do: generate (:mod:`selfguide.methods.selfguide.stages`), decide what
passes (:mod:`selfguide.methods.selfguide.filters`) or count the report
(:mod:`selfguide.methods.selfguide.report`).
"""

from __future__ import annotations

import json
import os
import random
from typing import TYPE_CHECKING

from selfguide.errors import DatasetError
from selfguide.methods import candidates
from selfguide.methods.selfguide.choice import LabelChoice, resolve_filters
from selfguide.methods.selfguide.config import FilterConfig
from selfguide.methods.selfguide.consistency import vote_samples
from selfguide.methods.selfguide.filters import apply, heldout_scores, near_duplicate_scores
from selfguide.methods.selfguide.relation import task_relation
from selfguide.methods.selfguide.report import build_report
from selfguide.runs import dataset, rounds
from selfguide.runs.rundir import as_run
from selfguide.task.parsing import map_label
from selfguide.task.prompts import task_prompt
from selfguide.task.spec import TaskSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

COLUMNS = (*candidates.COLUMNS, "label_vote", "label_scores", "answer_scores", "agreement",
           "origin", "source_row", "passage")


def build_table(inputs: list[dict], annotations: dict[str, dict], task: TaskSpec
                ) -> pd.DataFrame:
    """Join stage-1 rows and stage-2 samples into the candidates table (votes computed)."""
    import pandas as pd

    labels = list(task.labels) if task.is_classification else []
    copies = task_relation(task).edits_lightly
    rows = []
    for r in sorted(inputs, key=lambda r: (r["round"], r["prompt_id"])):
        a = annotations.get(r["id"])
        row = {"id": r["id"], "method": r.get("method", "selfguide"), "round": r["round"],
               "prompt_id": r["prompt_id"], "target_label": r.get("target_label", ""),
               "raw": r.get("raw", ""), "input": r.get("input", ""),
               "samples": None, "votes": "{}", "vote_share": 0.0, "output": "",
               "label_vote": "", "label_scores": None, "answer_scores": None,
               "agreement": None, "origin": r.get("origin") or "generated",
               "source_row": r.get("source_row"), "passage": r.get("passage") or ""}
        if a is not None:
            v = vote_samples(a["samples"], labels,
                             source=None if labels else r.get("input", ""), copies=copies)
            share = v.share if labels else v.votes.get(v.output, 0) / max(1, len(a["samples"]))
            row.update(samples=list(a["samples"]), votes=json.dumps(v.votes, ensure_ascii=False),
                       vote_share=share, output=v.output,
                       agreement=None if labels else v.share,
                       label_vote=(map_label(v.output, labels) or "") if labels else "",
                       label_scores=a.get("label_scores"), answer_scores=answer_scores(a))
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    demos = [d.input for d in task.demos]
    df["nd_score"], df["nd_nearest"] = near_duplicate_scores(df["input"].tolist(), demos,
                                                             df["id"].tolist())
    df["heldout_score"] = heldout_scores(df["input"].tolist(), task)
    return df


def answer_scores(annotation: dict) -> list[float] | None:
    """The label scores in the protocol the model answers in (what the ``own`` labels
    rank): stored apart when stage 2 labelled in another protocol, else its own scores."""
    if "answer_scores" in annotation:
        return annotation["answer_scores"]
    return annotation.get("label_scores") if annotation.get("protocol") == "chat" else None


def load_candidates(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The candidates table; rebuilt from the JSONL files when the Parquet is missing."""
    run = as_run(run_dir)
    df = candidates.read(run)
    if df is not None:
        return df
    task = run.read_task(required=True)
    ann = {r["id"]: r for r in candidates.unique(run.read_log(run.annotations_file))}
    return build_table(candidates.unique(run.read_log(run.inputs_file)), ann, task)


def finish(run_dir: str | os.PathLike, df: pd.DataFrame, task: TaskSpec,
           filters: FilterConfig, *, require_kept: bool = False) -> tuple[pd.DataFrame, dict]:
    """Apply the filters, write candidates.parquet and the dataset; return (table, report).

    ``require_kept``: raise ``DatasetError`` (and write nothing) when no row is kept.
    """
    run = as_run(run_dir)
    eff, choice = resolve_filters(df, task, filters, run.read_labelling())
    df = apply(df, eff, task, overrides=run.read_overrides())
    if require_kept and not int(df["kept"].sum()):
        reasons = df["drop_reason"].value_counts().head(3).to_dict()
        own_missing = eff.label_strategy == "own" and (
            "answer_scores" not in df or df["answer_scores"].isna().all())
        raise DatasetError(f"No candidate of run {run.name!r} passes the filters "
                           f"({len(df)} candidates; dropped: "
                           + ", ".join(f"{k} {v}" for k, v in reasons.items()) + ").",
                           hint="Label strategy own needs the label scores in the form the "
                                "model answers in, which this run lacks: choose another "
                                "label strategy or synthesize the run again; the dataset "
                                "was left unchanged." if own_missing else
                                "Loosen the filter options; the dataset was left unchanged.")
    candidates.write(run, df)
    report = write_dataset(run, df, task, eff, labelling=choice)
    return df, report


def build_records(df: pd.DataFrame, task: TaskSpec, *, val_fraction: float = 0.0,
                  seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, val) records of the kept rows, in table order; val is a seeded sample."""
    kept = df[df["kept"]] if len(df) else df
    recs = []
    for row in kept.itertuples(index=False):
        label = getattr(row, "label", "") or ""
        output = label if task.is_classification else str(row.output)
        rec = {"id": row.id, "prompt": task_prompt(task, row.input), "completion": output,
               "input": row.input, "output": output,
               "origin": getattr(row, "origin", None) or "generated"}
        if task.is_classification:
            rec["label"] = label
        recs.append(rec)
    n_val = round(len(recs) * val_fraction)
    if n_val == 0:
        return recs, []
    val_ids = set(random.Random(seed).sample([r["id"] for r in recs], n_val))
    return ([r for r in recs if r["id"] not in val_ids], [r for r in recs if r["id"] in val_ids])




def write_dataset(run_dir: str | os.PathLike, df: pd.DataFrame, task: TaskSpec,
                  cfg: FilterConfig, *, labelling: LabelChoice | None = None) -> dict:
    """Write dataset/train.jsonl, dataset/val.jsonl and dataset/report.json; return the report.

    Rows repaired by hand (``overrides.json``) enter with their corrected output/label."""
    df = candidates.apply_repairs(df, as_run(run_dir).read_repairs())
    train, val = build_records(df, task, val_fraction=cfg.val_fraction, seed=cfg.seed)
    report = build_report(df, task, cfg, n_train=len(train), n_val=len(val),
                          labelling=labelling)
    rnd = rounds.dataset_round(as_run(run_dir))
    if rnd:  # a later round: the answers come from the tuned model of the round before
        report["round"] = rnd
    return dataset.write_dataset(run_dir, train, val, report)
