"""A third synthesis method that lives only in this folder (the registry's acceptance test).

It "synthesizes" ``count`` numbered rows without a model, filters them by input length,
and writes the candidates table and the dataset through the library's shared writers, so
that every caller (CLI, jobs, cards, studio) must find it through the registry alone.
"""

from __future__ import annotations

import dataclasses

from selfguide.methods import Method, register
from selfguide.settings.fields import field

NAME = "toymethod"


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    count: int = field(6, help="How many toy rows to write.", range=(1, 1000))
    seed: int = field(0, help="Random seed.")


@dataclasses.dataclass(frozen=True)
class ToyFilters:
    min_chars: int = field(0, help="Drop toy inputs shorter than this many characters.", range=(0, 1000))


def _rows(run_dir):
    from selfguide.runs.rundir import as_run

    cfg = as_run(run_dir).read_config()
    count = int((cfg.get("synthesis") or {}).get("count", 6))
    return [{"id": f"t{i}", "input": "toy input " + "x" * i, "output": f"toy output {i}"}
            for i in range(count)]


def refilter(run_dir, filters=None) -> dict:
    import pandas as pd

    from selfguide.methods import candidates
    from selfguide.runs.dataset import write_dataset
    from selfguide.runs.rundir import as_run

    run = as_run(run_dir)
    filters = filters or load_settings(run)[1]
    rows = _rows(run)
    df = pd.DataFrame([{"id": r["id"], "method": NAME, "round": 0, "prompt_id": 0,
                        "target_label": None, "raw": r["input"], "input": r["input"],
                        "samples": [r["output"]], "votes": 1, "vote_share": 1.0,
                        "output": r["output"]} for r in rows])
    df["f_length"] = df["input"].str.len() >= filters.min_chars
    df["kept"] = df["f_length"]
    df["drop_reason"] = ["" if k else "length" for k in df["kept"]]
    candidates.write(run, df)
    train = [{"id": r["id"], "prompt": r["input"], "completion": r["output"],
              "input": r["input"], "output": r["output"]}
             for r, k in zip(rows, df["kept"]) if k]
    report = {"candidates": len(df), "kept": len(train), "train": len(train), "val": 0}
    cfg = run.read_config()
    run.write_config({**cfg, "filters": dataclasses.asdict(filters)})
    return write_dataset(run, train, [], report)


def load_candidates(run_dir):
    from selfguide.methods import candidates

    return candidates.read(run_dir)


def load_settings(run_dir):
    from selfguide.runs.rundir import as_run
    from selfguide.settings.fields import from_dict

    cfg = as_run(run_dir).read_config()
    return (from_dict(ToyConfig, cfg.get("synthesis") or {}, strict=False),
            from_dict(ToyFilters, cfg.get("filters") or {}, strict=False))


def run(run_dir, synthesis: ToyConfig, filters: ToyFilters, **_: object) -> dict:
    from selfguide.runs.rundir import as_run

    run = as_run(run_dir)
    run.write_config({"method": NAME, "synthesis": dataclasses.asdict(synthesis),
                      "filters": dataclasses.asdict(filters)})
    return refilter(run, filters)


def format_report(report: dict) -> str:
    return f"toy rows: {report.get('candidates', 0)} candidates, {report.get('kept', 0)} kept"


METHOD = register(Method(
    name=NAME, title="Toy method", stage="toy-synth", command="toymethod.command",
    synthesis_config=ToyConfig, filter_config=ToyFilters, run=run, refilter=refilter,
    load_candidates=load_candidates, load_settings=load_settings, format_report=format_report,
    filter_order=("length",), summary="Toy method: numbered rows, no model",
    subtitle="Step 3 of 6 · The toy method writes numbered rows.", citation="Toy (tests)",
    tag="toy-method", order=50, needs_task=False, job_stages={"toy": "writing toy rows"}))
