"""``selfguide label TASK --inputs FILE``: label given inputs exactly as stage 2 would.

A way to measure self-label quality on real rows from outside. The labelling choice is
the pipeline's own: for a classification task it comes from a SELF-GUIDE run of the task
(``--run NAME``, or else a run the command synthesizes first with the same preset, kept in
``<workspace>/labels/`` and reused next time): leave-one-out on the demos, degeneracy and
agreement with the asked-for label on the model's own inputs
(``selfguide.methods.selfguide.choice``).
For a generation task the demos alone choose the protocol. Every input is then labelled
with the same sampling and seeds. When the file has references (``output``), every
protocol and strategy is labelled too and a table of accuracies is printed, with the
majority-class share as reference, ending with the line ``accuracy: 0.87`` for the default
choice (generation tasks: ``rouge_l: 0.41``).

FILE: JSONL or CSV with an ``input`` column and an optional ``output`` (or ``outputs``),
or a task file whose ``test`` / NIv2 ``Instances`` rows are used. Labels are written as
JSONL to ``--out`` (default ``<workspace>/labels/<task>.jsonl``).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from selfguide.errors import DatasetError
from selfguide.seeding import derive_seed as _seed

NAME = "label"
HELP = "Label inputs as SELF-GUIDE stage 2 would; with references, print label accuracy."
ORDER = 25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selfguide.settings.fields import ModelConfig, add_dataclass_args

    parser.add_argument("task", help="Task file (JSON/YAML, NIv2 JSON, CSV or JSONL).")
    parser.add_argument("--inputs", required=True, type=Path,
                        help="JSONL/CSV with 'input' (and optional 'output'), or a task file "
                             "whose test rows are used.")
    parser.add_argument("--preset", default="quick", help="Synthesis preset (quick or paper).")
    parser.add_argument("--label-protocol", default=None, choices=("auto", "chat", "plain"),
                        help="Override the preset's labelling protocol.")
    parser.add_argument("--label-strategy", default=None,
                        choices=("auto", "vote", "rank", "calibrated", "own"),
                        help="Override the preset's label strategy.")
    parser.add_argument("--run", default=None,
                        help="Classification: take the labelling choice from this SELF-GUIDE "
                             "run of the task (default: synthesize one with the preset, kept "
                             "in <workspace>/labels/ and reused).")
    parser.add_argument("--n-samples", type=int, default=None, help="Samples per input.")
    parser.add_argument("--output-temperature", type=float, default=None,
                        help="Sampling temperature of the answers.")
    parser.add_argument("--limit", type=int, default=0,
                        help="Label a seeded sample of this many rows (0 = all).")
    parser.add_argument("--out", type=Path, default=None,
                        help="Where to write the labels (JSONL; default "
                             "<workspace>/labels/<task>.jsonl).")
    add_dataclass_args(parser, ModelConfig)


def read_inputs(path: Path) -> list[dict]:
    """``[{"id", "input", "outputs"}]`` (``outputs`` empty when the file has none)."""
    from selfguide.task.formats import read_example_rows

    return read_example_rows(path, what="Inputs file", need_output=False, id_prefix="row-",
                             task_start=1)


def run(args: argparse.Namespace) -> int:
    from selfguide import backends
    from selfguide.evaluation.predict import select_examples
    from selfguide.methods.selfguide.config import preset
    from selfguide.runs import store
    from selfguide.settings.fields import ModelConfig, overrides_from_args, replace
    from selfguide.task.formats import load_task

    task = load_task(args.task)
    rows = read_inputs(args.inputs)
    if args.limit < 0:
        raise DatasetError("--limit must be 0 (all rows) or a positive number.")
    synth, filters = preset(args.preset)
    synth = replace(synth, label_protocol=args.label_protocol, n_samples=args.n_samples,
                    output_temperature=args.output_temperature)
    filters = replace(filters, label_strategy=args.label_strategy)
    rows = select_examples(rows, args.limit, synth.seed)
    model = replace(ModelConfig(), **overrides_from_args(args, ModelConfig))
    out = args.out or store.workspace_dir() / "labels" / f"{task.name}.jsonl"
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise DatasetError(f"{out} exists and is not a regular file; refusing to replace it.")
    run_dir = given_run(args.run, task) if task.is_classification else None
    if run_dir is not None and args.label_strategy is None:  # the run's own filter settings
        from selfguide.methods.selfguide.pipeline import load_run

        filters = load_run(run_dir)[2]
    generator = backends.get_generator(model.backend, config=model)
    if task.is_classification and run_dir is None:
        run_dir = evidence_run(task, synth, filters, model, generator)
    result = label_rows(task, rows, generator, synth, filters, chat=model.chat,
                        run_dir=run_dir)
    store.atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                         for r in result["rows"]))
    if result["choice"].get("run"):
        print(f"Labelling choice of the run {result['choice']['run']}:")
    print(result["choice"]["reason"])
    print(f"labels: {out}")
    if result["table"]:
        print(format_table(result))
    return 0


def given_run(name: str | None, task):
    """The path of run ``name`` (a SELF-GUIDE run of ``task`` with a labelling choice), or
    None without a name."""
    from selfguide.runs.rundir import RunDir

    if not name:
        return None
    run = RunDir.named(name, must_exist=True)
    other = run.read_task(required=True)
    if other.name != task.name or tuple(other.labels) != tuple(task.labels):
        raise DatasetError(f"Run {name!r} is a run of task {other.name!r}, not of "
                           f"{task.name!r}.", hint="Pass a run of this task, or leave "
                                                  "--run out to synthesize one.")
    if not run.labelling_file.is_file():
        raise DatasetError(f"Run {name!r} has no labelling choice yet.",
                           hint=f"Let 'selfguide synthesize --run {name}' finish first.")
    return run.path


def evidence_run(task, synth, filters, model, generator):
    """A run synthesized with ``synth`` for the labelling choice (reused when it exists)."""
    from selfguide.methods.selfguide.pipeline import run_synthesis
    from selfguide.runs import store
    from selfguide.settings.fields import to_dict

    key = store.config_hash({"task": task.to_dict(), "synthesis": to_dict(synth),
                             "model": to_dict(model)})[:10]
    path = store.workspace_dir() / "labels" / f"{task.name}-run-{key}"
    print(f"Synthesizing a run of {task.name!r} for the labelling choice ({path}; reused "
          f"next time)...", flush=True)
    run_synthesis(path, task, synth, filters, model, generator=generator)
    return path


def label_rows(task, rows: list[dict], generator, synth, filters, *, chat: bool = True,
               run_dir=None) -> dict:
    """Evidence, choice and labels for ``rows`` (the pipeline's functions and seeds).

    ``run_dir`` (classification): the SELF-GUIDE run whose labelling choice to follow;
    without one the demos and ``rows`` alone decide (no agreement evidence).
    """
    from selfguide.methods.selfguide import choice as pick
    from selfguide.methods.selfguide import labelling

    items = [(r["id"], r["input"]) for r in rows]
    protocols = ("plain",) if not chat else (
        labelling.PROTOCOLS if synth.label_protocol == "auto" else (synth.label_protocol,))
    answer = labelling.answer_protocol(chat)
    if run_dir is not None:
        evidence, choice = _run_choice(run_dir, task, filters)
    else:
        sampling = labelling.sampling_for(task, generator,
                                          temperature=synth.output_temperature,
                                          max_new_tokens=synth.output_max_new_tokens,
                                          seed=_seed(synth.seed, "probe"))
        probe = [x for _, x in items[:synth.probe_inputs]] if task.is_classification else []
        evidence, _ = labelling.gather_evidence(task, generator, probe, protocols, sampling,
                                                synth.n_samples, answer=answer)
        choice = pick.choose_protocol(evidence)
        if synth.label_protocol != "auto" or not chat:
            choice["protocol"] = protocols[0]
    refs = any(r["outputs"] for r in rows)
    todo = protocols if refs else (choice["protocol"],)
    if task.is_classification and answer not in todo:
        todo = (*todo, answer)  # the own labels rank the answer protocol's scores
    base = labelling.sampling_for(task, generator, temperature=synth.output_temperature,
                                  max_new_tokens=synth.output_max_new_tokens)
    by_protocol = {}
    for p in todo:
        recs = labelling.label_batches(
            task, items, generator, p, base, synth.n_samples, batch=synth.annotate_batch,
            seed=lambda first: _seed(synth.seed, "annotate", first), score=synth.score_labels)
        by_protocol[p] = recs
    return assemble(task, rows, evidence, choice, by_protocol, filters)


def _run_choice(run_dir, task, filters) -> tuple[dict, dict]:
    """(evidence, choice) of a synthesized run: its protocol, and its strategy as
    ``selfguide filter`` resolves it with ``filters``."""
    from selfguide.methods.selfguide import choice as pick
    from selfguide.methods.selfguide.table import load_candidates
    from selfguide.runs.rundir import RunDir

    stored = RunDir(run_dir).read_labelling() or {}
    _, choice = pick.resolve_filters(load_candidates(run_dir), task, filters, stored)
    return stored.get("evidence") or {}, {**choice, "run": str(run_dir)}


def assemble(task, rows: list[dict], evidence: dict, choice: dict,
             by_protocol: dict[str, list[dict]], filters) -> dict:
    """Labels per row for the chosen protocol/strategy, and accuracies when references exist.

    ``choice`` with a ``strategy`` already (from a run) is kept; else it is chosen here
    from the demos and these rows."""
    from selfguide.methods.selfguide import choice as pick
    from selfguide.methods.selfguide import labelling
    from selfguide.methods.selfguide.consistency import vote_samples

    protocol = choice["protocol"]
    cls = task.is_classification
    gold = [task.canonical_label(r["outputs"][0]) or r["outputs"][0] if r["outputs"] else None
            for r in rows]
    per: dict[str, dict[str, list[str]]] = {}
    for p, recs in by_protocol.items():
        if cls:
            per[p] = labelling.self_labels(task, recs)
        else:
            per[p] = {"vote": [vote_samples(r["samples"], source=row["input"]).output
                               for r, row in zip(recs, rows)]}
    answer = pick.answer_of(evidence) if evidence.get("protocols") else protocol
    if cls and answer in per:  # own: the answer protocol's likeliest label
        per[answer] = {**per[answer], labelling.OWN: per[answer]["rank"]}
    if cls and choice.get("strategy_chosen_by") is None:  # no run: the demos and rows decide
        own = {labelling.OWN: per[answer][labelling.OWN]} if answer in per else {}
        strat = pick.choose_strategy(evidence, protocol, {**per[protocol], **own}, task.labels)
        chosen = strat["strategy"] if filters.label_strategy == "auto" else filters.label_strategy
        choice = {**choice, "strategy": chosen, "beats_chance": strat["beats_chance"],
                  "best_self": strat.get("best_self"),
                  "reason": strat["reason"] if filters.label_strategy == "auto"
                  else choice["reason"]}
    if cls:
        chosen = choice["strategy"]
        if chosen not in (*per[protocol], labelling.OWN):  # target / agree: no such rows
            chosen = choice.get("best_self") or labelling.OWN
            choice = {**choice, "strategy": chosen}
    else:
        chosen = "vote"
        choice = {**choice, "strategy": None}
    shown = answer if chosen == labelling.OWN else protocol
    labels = per[shown][chosen]
    out_rows = [{"id": r["id"], "input": r["input"], "label": lab, "protocol": shown,
                 "strategy": chosen if cls else None,
                 **({"reference": r["outputs"][0]} if r["outputs"] else {})}
                for r, lab in zip(rows, labels)]
    scored = [i for i, g in enumerate(gold) if g is not None]
    table = _accuracy_table(task, rows, per, gold, scored, (shown, chosen))
    majority = max(Counter(gold[i] for i in scored).values()) / len(scored) \
        if scored and cls else None
    return {"rows": out_rows, "choice": choice, "table": table, "metric":
            "accuracy" if cls else "rouge_l", "majority": majority, "n": len(scored),
            "evidence": evidence}


def _accuracy_table(task, rows: list[dict], per: dict[str, dict[str, list[str]]],
                    gold: list, scored: list[int], default: tuple[str, str]) -> list[dict]:
    """One row per protocol x strategy (``own`` under the protocol it ranks)."""
    from selfguide.evaluation.metrics import label_accuracy, mean, rouge_l

    table: list[dict] = []
    if not scored:
        return table
    cls = task.is_classification
    for p, labs in per.items():
        for s, pred in labs.items():
            if cls:
                v = label_accuracy([pred[i] for i in scored], [gold[i] for i in scored])
            else:
                v = mean([rouge_l(pred[i], rows[i]["outputs"]) for i in scored])
            table.append({"protocol": p, "strategy": s, "value": v,
                          "labels": dict(Counter(pred)) if cls else None,
                          "default": (p, s) == default})
    return table


def format_table(result: dict) -> str:
    metric = result["metric"]
    lines = [f"| protocol | strategy | {metric} | labels |", "| --- | --- | --- | --- |"]
    default = None
    for t in result["table"]:
        mark = " (default)" if t["default"] else ""
        labs = ", ".join(f"{k or '(none)'} {v}" for k, v in (t["labels"] or {}).items())
        lines.append(f"| {t['protocol']} | {t['strategy']}{mark} | {t['value']:.3f} | "
                     f"{labs} |")
        if t["default"]:
            default = t["value"]
    if result["majority"] is not None:
        lines.append(f"majority-class share: {result['majority']:.3f} (n={result['n']})")
    if default is not None:
        lines.append(f"{metric}: {default:.2f}")
    return "\n".join(lines)

