"""One more round (issue 34): the tuned model re-answers the run's synthetic inputs.

What it does: :func:`relabel` makes round ``k`` of a trained SELF-GUIDE run: round
``k - 1``'s files are archived first (:mod:`selfguide.runs.rounds`: ``rounds/<k-1>/``
keeps its annotations, dataset, adapter and evaluation), then stage 2 runs again with the
same settings -- ``n_samples``, the vote or consensus, the labelling protocol recorded in
``labelling.json`` (or, as an option, the one the tuned model answers in) -- on the same inputs (those of the candidates table), with the run's
tuned model (base + adapter, :func:`tuned_generator`) as the generator, and the filters
write the new candidates and dataset, whose report says which round it is. The next
``selfguide train`` trains from the base model on it (the dataset changed, so the old
checkpoints are not resumed and the earlier training and evaluation are stale). A killed
round is continued by running it again; :func:`plan_round` says which round a call makes
and refuses what cannot be done (no adapter, an adapter older than the dataset, a skipped
round).

What it does not do: write new inputs (stage 1), train or evaluate, or decide whether a
second round helps (the option is off by default; ``selfguide run --rounds 2`` measures it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfguide.errors import ConfigError, DatasetError
from selfguide.methods import candidates
from selfguide.methods.context import StageContext
from selfguide.methods.selfguide import labelling
from selfguide.methods.selfguide.filters import apply
from selfguide.methods.selfguide.pipeline import load_run
from selfguide.methods.selfguide.stages import annotate
from selfguide.methods.selfguide.table import build_table, finish, load_candidates
from selfguide.runs import rounds
from selfguide.runs.events import EventLog
from selfguide.runs.rundir import RunDir, as_run
from selfguide.runs.stale import stale_stages
from selfguide.seeding import derive_seed
from selfguide.settings.fields import replace

if TYPE_CHECKING:  # pragma: no cover
    from selfguide.backends import Generator


def source_words(k: int) -> str:
    """How a report and a card say where round ``k``'s answers come from."""
    return f"answers from the tuned model of round {k - 1}"


def plan_round(run: RunDir, target: int | None = None) -> int | None:
    """The round a relabel makes now (``None``: the dataset is round ``target`` already).

    ``target`` None: the next round (or the one a killed relabel left half made)."""
    hint_train = f"Train it first: selfguide train --run {run.name}"
    if not run.has_adapter():
        raise ConfigError(f"Run {run.name!r} has no trained adapter yet; another round "
                          "re-answers its inputs with the tuned model.", hint=hint_train + ".")
    st = rounds.state(run)
    if st["state"] == "labelling":
        if target not in (None, st["current"]):
            raise ConfigError(f"Round {st['current']} of run {run.name!r} is half made.",
                              hint=f"Finish it first: selfguide relabel --run {run.name} "
                                   "(it continues where it stopped).")
        return st["current"]
    want = st["current"] + 1 if target is None else int(target)
    if want < 2:
        raise ConfigError(f"Round {want} is not a relabel round; round 1 is synthesis.",
                          hint="Ask for round 2 or later (--round 2).")
    if want <= st["current"]:
        return None
    if want > st["current"] + 1:
        raise ConfigError(f"Run {run.name!r} is at round {st['current']}; round {want} "
                          f"needs round {want - 1} first.",
                          hint=f"Make round {st['current'] + 1} (selfguide relabel --run "
                               f"{run.name}), train, then the next.")
    if "train" in stale_stages(run):
        raise ConfigError(f"The adapter of run {run.name!r} was trained before its dataset "
                          f"last changed, so it is not round {st['current']}'s tuned model.",
                          hint=hint_train + f", then selfguide relabel --run {run.name}.")
    return want


def protocol_for(run: RunDir, wanted: str | None, chat: bool) -> str | None:
    """The protocol to label a new round in instead of the one round 1 chose from the base
    model's evidence (None: that one): ``answer`` is the form the tuned model answers in
    (as evaluation asks it), ``chat``/``plain`` themselves. A protocol the evidence has no
    record of is refused (the label strategy is chosen from it)."""
    old = run.read_labelling() or {}
    new = labelling.answer_protocol(chat) if wanted == "answer" else wanted
    if not new or new == "same" or new == old.get("protocol"):
        return None
    have = ((old.get("evidence") or {}).get("protocols") or {})
    if new not in have:
        raise ConfigError(f"Run {run.name!r} has no labelling evidence in the {new} protocol "
                          f"(it weighed {', '.join(have) or 'none'}).",
                          hint="Relabel in the protocol it chose (--protocol same).")
    return new


def switch_protocol(run: RunDir, new: str, k: int) -> None:
    """``labelling.json`` says round ``k`` labels in ``new`` (round 1's file is archived)."""
    old = run.read_labelling() or {}
    run.write_labelling({**old, "protocol": new, "chosen_by": "relabel",
                         "reason": f"Round {k}: labelled in the {new} protocol, as the tuned "
                                   f"model answers (round 1 chose {old.get('protocol')}: "
                                   f"{old.get('reason', '')})"})


def round_inputs(run: RunDir) -> list[dict]:
    """The inputs of the run's candidates table (stage 1's rows and the user's own), as
    ``inputs.jsonl`` holds them, in table order."""
    hint = f"Synthesize it first: selfguide synthesize TASK --run {run.name}."
    if not run.inputs_file.is_file():
        raise DatasetError(f"Run {run.name!r} has no synthetic inputs ({run.inputs_file.name} "
                           "is missing).", hint=hint)
    by_id = {r["id"]: r for r in candidates.unique(run.read_log(run.inputs_file))}
    ids = load_candidates(run)["id"].tolist()
    rows = [by_id[i] for i in ids if i in by_id]
    if not rows:
        raise DatasetError(f"Run {run.name!r} has no synthetic inputs to answer again.",
                           hint=hint)
    return rows


def tuned_generator(run_dir: str | os.PathLike, *, precision: str = "auto"
                    ) -> tuple[Generator, bool]:
    """The run's tuned model (base + adapter) as a generator, and its chat flag."""
    from selfguide.evaluation.predict import tuned_generator as load

    gen, _, _, man = load(Path(run_dir), precision=precision)
    return gen, bool(man.get("chat", True))


def relabel(run_dir: str | os.PathLike, generator: Generator | None = None, *,
            target: int | None = None, chat: bool | None = None,
            events: EventLog | None = None, cancel: Any = None, stream: Any = ...,
            precision: str = "auto", dry_run: bool = False,
            protocol: str | None = None) -> dict:
    """Make round ``target`` (default: the next) of the run; return its dataset report.

    ``generator`` None loads the tuned model (:func:`tuned_generator`); tests pass one.
    ``chat`` defaults to the adapter's (else the run model's) chat flag. ``dry_run``: only
    check, and return ``{"plan": k or None, "inputs": n}`` (None: nothing to do).
    ``protocol``: None/``same`` (default), ``answer``, ``chat`` or ``plain``
    (:func:`switch_protocol`; only when a round starts)."""
    run = as_run(run_dir)
    task, synth, filters, _ = load_run(run)
    k = plan_round(run, target)
    inputs = round_inputs(run) if k is not None else []
    if chat is None:  # the tuned model's (recorded with its adapter), else the run model's
        chat = bool((run.read_adapter_manifest() or {}).get("chat", run.model_config().chat))
    starting = k is not None and rounds.state(run)["state"] != "labelling"
    new_protocol = protocol_for(run, protocol, chat) if starting else None
    if dry_run:
        return {"plan": k, "inputs": len(inputs)}
    if k is None:
        return run.read_report() or {}
    if generator is None:
        generator, _ = tuned_generator(run, precision=precision)
    if starting:
        rounds.archive(run, k - 1)
        if new_protocol:
            switch_protocol(run, new_protocol, k)
        rounds.start_labelling(run, k, source_words(k))
    ctx = StageContext(generator, chat=chat, events=events or EventLog(None), cancel=cancel,
                       stream=stream)
    ctx.events.emit("log", message=f"round {k}: {len(inputs)} inputs answered again by the "
                                   f"tuned model of round {k - 1} (round {k - 1}'s files "
                                   f"kept in {rounds.round_dir(run, k - 1).relative_to(run.path)})")
    cfg = replace(synth, seed=derive_seed(synth.seed, "round", k))
    first = apply(build_table(inputs, {}, task), filters, task, stage="input")
    keep = first[first["kept"]]
    ann = annotate(run, task, cfg, list(zip(keep["id"].tolist(), keep["input"].tolist())), ctx)
    _, report = finish(run, build_table(inputs, ann, task), task, filters, require_kept=True)
    report["round"] = {"round": k, "source": source_words(k)}
    run.write_report(report)
    rounds.set_state(run, k, "done", source_words(k))
    ctx.events.emit("funnel", funnel=report["funnel"], labels=report["labels"],
                    diagnostics=report["diagnostics"])
    return report
