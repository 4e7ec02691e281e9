"""Label given inputs exactly as SELF-GUIDE stage 2 would (``selfguide label``).

A way to measure self-label quality on real rows from outside. The labelling choice is
the pipeline's own: for a classification task it comes from a SELF-GUIDE run of the task
(a named run, or else a run synthesized first with the same preset, kept in
``<workspace>/labels/`` and reused next time): leave-one-out on the demos, degeneracy and
agreement with the asked-for label on the model's own inputs
(:mod:`selfguide.methods.selfguide.choice`). For a generation task the demos alone choose
the protocol. Every input is then labelled with the same sampling and seeds. When the rows
have references (``outputs``), every protocol and strategy is labelled too and a table of
accuracies is built, with the majority-class share as reference.

What it does not do: parse arguments, print or write the labels file (the command does),
or choose anything itself (:mod:`~selfguide.methods.selfguide.choice` does).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfguide.errors import DatasetError
from selfguide.methods.selfguide import choice as pick
from selfguide.methods.selfguide import labelling
from selfguide.methods.selfguide.choice import LabelChoice
from selfguide.methods.selfguide.strategies import AUTO, OWN
from selfguide.seeding import derive_seed as _seed
from selfguide.task.spec import TaskSpec


def read_inputs(path: Path) -> list[dict]:
    """``[{"id", "input", "outputs"}]`` (``outputs`` empty when the file has none)."""
    from selfguide.task.formats import read_example_rows

    return read_example_rows(path, what="Inputs file", need_output=False, id_prefix="row-",
                             task_start=1)


def default_out(task: TaskSpec) -> Path:
    """Where the labels go without ``--out``: ``<workspace>/labels/<task>.jsonl``."""
    from selfguide.runs import store

    return store.workspace_dir() / "labels" / f"{task.name}.jsonl"


def label_file(task: TaskSpec, rows: list[dict], model: Any, *, preset_name: str,
               out: Path, limit: int = 0, run_name: str | None = None,
               overrides: dict | None = None, note: Callable[[str], None] | None = None
               ) -> dict:
    """Label ``rows`` with ``model`` under the synthesis preset ``preset_name``
    (``overrides``: ``label_protocol``, ``label_strategy``, ``n_samples``,
    ``output_temperature``; None keeps the preset's), following run ``run_name``'s
    labelling choice (classification; default: one synthesized for it). Checks the
    arguments before a model loads; ``note`` hears what takes long. Returns
    :func:`label_rows`'s result; nothing is written but the evidence run."""
    from selfguide import backends
    from selfguide.evaluation.predict import select_examples
    from selfguide.methods.selfguide.config import preset
    from selfguide.settings.fields import replace

    overrides = overrides or {}
    if limit < 0:
        raise DatasetError("--limit must be 0 (all rows) or a positive number.")
    synth, filters = preset(preset_name)
    synth = replace(synth, **{k: overrides.get(k) for k in
                              ("label_protocol", "n_samples", "output_temperature")})
    filters = replace(filters, label_strategy=overrides.get("label_strategy"))
    rows = select_examples(rows, limit, synth.seed)
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise DatasetError(f"{out} exists and is not a regular file; refusing to replace it.")
    run_dir = given_run(run_name, task) if task.is_classification else None
    if run_dir is not None and overrides.get("label_strategy") is None:
        from selfguide.methods.selfguide.pipeline import load_run

        filters = load_run(run_dir)[2]  # the run's own filter settings
    generator = backends.get_generator(model.backend, config=model)
    if task.is_classification and run_dir is None:
        run_dir = evidence_run(task, synth, filters, model, generator, note=note)
    return label_rows(task, rows, generator, synth, filters, chat=model.chat,
                      run_dir=run_dir)


def given_run(name: str | None, task: TaskSpec) -> Path | None:
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


def evidence_run(task: TaskSpec, synth: Any, filters: Any, model: Any, generator: Any, *,
                 note: Callable[[str], None] | None = None) -> Path:
    """A run synthesized with ``synth`` for the labelling choice (reused when it exists)."""
    from selfguide.methods.selfguide.pipeline import run_synthesis
    from selfguide.runs import store
    from selfguide.settings.fields import to_dict

    key = store.config_hash({"task": task.to_dict(), "synthesis": to_dict(synth),
                             "model": to_dict(model)})[:10]
    path = store.workspace_dir() / "labels" / f"{task.name}-run-{key}"
    if note is not None:
        note(f"Synthesizing a run of {task.name!r} for the labelling choice ({path}; "
             f"reused next time)...")
    run_synthesis(path, task, synth, filters, model, generator=generator)
    return path


def label_rows(task: TaskSpec, rows: list[dict], generator: Any, synth: Any, filters: Any,
               *, chat: bool = True, run_dir: Path | None = None) -> dict:
    """Evidence, choice and labels for ``rows`` (the pipeline's functions and seeds).

    ``run_dir`` (classification): the SELF-GUIDE run whose labelling choice to follow;
    without one the demos and ``rows`` alone decide (no agreement evidence).
    """
    from selfguide.backends.rendering import chat_for

    chat = chat_for(generator, chat)  # a base model labels as plain text only
    items = [(r["id"], r["input"]) for r in rows]
    protocols = pick.protocols_to_try(synth.label_protocol, chat)
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
        p = pick.pick_protocol(evidence, synth.label_protocol, chat)
        choice = LabelChoice(protocol=p["protocol"], protocol_chosen_by=p["chosen_by"],
                             protocol_reason=p["reason"], requested=filters.label_strategy,
                             beats_chance=p["beats_chance"], reason=p["reason"])
    refs = any(r["outputs"] for r in rows)
    todo = protocols if refs else (choice.protocol,)
    if task.is_classification and answer not in todo:
        todo = (*todo, answer)  # the own labels rank the answer protocol's scores
    base = labelling.sampling_for(task, generator, temperature=synth.output_temperature,
                                  max_new_tokens=synth.output_max_new_tokens)
    by_protocol = {}
    for p in todo:
        by_protocol[p] = labelling.label_batches(
            task, items, generator, p, base, synth.n_samples, batch=synth.annotate_batch,
            seed=lambda first: _seed(synth.seed, "annotate", first), score=synth.score_labels)
    return assemble(task, rows, evidence, choice, by_protocol, filters)


def _run_choice(run_dir: Path, task: TaskSpec, filters: Any) -> tuple[dict, LabelChoice]:
    """(evidence, choice) of a synthesized run: its protocol, and its strategy as
    ``selfguide filter`` resolves it with ``filters``."""
    from selfguide.methods.selfguide.table import load_candidates
    from selfguide.runs.rundir import RunDir

    stored = RunDir(run_dir).read_labelling() or {}
    _, choice = pick.resolve_filters(load_candidates(run_dir), task, filters, stored)
    return stored.get("evidence") or {}, dataclasses.replace(choice, run=str(run_dir))


def _labels_by_protocol(task: TaskSpec, rows: list[dict], evidence: dict, protocol: str,
                        by_protocol: dict[str, list[dict]]) -> tuple[dict, str]:
    """(protocol -> strategy -> labels, the answer protocol); ``own`` under the answer
    protocol (its likeliest label); generation: the vote of the samples."""
    from selfguide.methods.selfguide.consistency import vote_samples
    from selfguide.methods.selfguide.relation import task_relation

    light = task_relation(task).edits_lightly
    per: dict[str, dict[str, list[str]]] = {}
    for p, recs in by_protocol.items():
        if task.is_classification:
            per[p] = labelling.self_labels(task, recs)
        else:
            per[p] = {"vote": [vote_samples(r["samples"], source=row["input"],
                                            copies=light).output
                               for r, row in zip(recs, rows)]}
    answer = pick.answer_of(evidence) if evidence.get("protocols") else protocol
    if task.is_classification and answer in per:
        per[answer] = {**per[answer], OWN: per[answer]["rank"]}
    return per, answer


def _strategy_choice(task: TaskSpec, evidence: dict, choice: LabelChoice, per: dict,
                     answer: str, filters: Any) -> LabelChoice:
    """``choice`` with the strategy the labels use: a run's (kept), else ``auto`` resolved
    by :func:`~selfguide.methods.selfguide.choice.choose_strategy` from the demos and these
    rows; a strategy these rows cannot carry (target, agree) falls back to the best self
    label."""
    if not task.is_classification:
        return dataclasses.replace(choice, strategy=None)
    if choice.strategy_chosen_by is None:  # no run: the demos and these rows decide
        own = {OWN: per[answer][OWN]} if answer in per else {}
        strat = pick.choose_strategy(evidence, choice.protocol,
                                     {**per[choice.protocol], **own}, task.labels)
        auto = filters.label_strategy == AUTO
        choice = dataclasses.replace(
            choice, strategy=strat["strategy"] if auto else filters.label_strategy,
            strategy_chosen_by=AUTO if auto else "user", best_self=strat.get("best_self"),
            beats_chance=strat["beats_chance"],
            reason=strat["reason"] if auto else choice.reason)
    if choice.strategy not in (*per[choice.protocol], OWN):  # target / agree: no such rows
        choice = dataclasses.replace(choice, strategy=choice.best_self or OWN)
    return choice


def assemble(task: TaskSpec, rows: list[dict], evidence: dict, choice: LabelChoice,
             by_protocol: dict[str, list[dict]], filters: Any) -> dict:
    """Labels per row for the chosen protocol/strategy, and accuracies when references exist.

    ``choice`` with a ``strategy`` already (from a run) is kept; else it is chosen here
    from the demos and these rows."""
    cls = task.is_classification
    per, answer = _labels_by_protocol(task, rows, evidence, choice.protocol, by_protocol)
    choice = _strategy_choice(task, evidence, choice, per, answer, filters)
    chosen = choice.strategy if cls else "vote"
    shown = answer if chosen == OWN else choice.protocol
    labels = per[shown][chosen]
    gold = [task.canonical_label(r["outputs"][0]) or r["outputs"][0] if r["outputs"] else None
            for r in rows]
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


def _accuracy_table(task: TaskSpec, rows: list[dict], per: dict[str, dict[str, list[str]]],
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
    """The accuracy table as Markdown, the majority-class share, and the last line
    ``accuracy: 0.87`` (generation: ``rouge_l: 0.41``) for the default choice."""
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
