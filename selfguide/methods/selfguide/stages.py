"""SELF-GUIDE's two generating stages (Zhao et al. 2024): inputs, then their self-labels.

Stage 1 (:func:`generate_inputs`): ``rounds`` x ``prompts_per_round`` prompts (plus whole
rounds, up to ``max_rounds``, while fewer than ``min_inputs`` pass the input filters), each with the
instruction, the demos' inputs (high quality) and 1-10 inputs generated in earlier rounds
(lower quality); classification prompts draw a target label uniformly and ask for an input
with that answer. Every finished round is appended to ``inputs.jsonl``.

Stage 2 (:func:`annotate`): every input that passes the input filters gets
:func:`selfguide.task.prompts.task_prompt` and ``n_samples`` sampled answers (the backend shares
one prefill); classification also scores each label (for the ``rank``/``calibrated``
strategies), and in the answer protocol too when it labels in another (the ``own`` labels).
Each finished batch is appended to ``annotations.jsonl``; the labelling protocol it uses is
settled first (:func:`label_protocol`, ``labelling.json``).

A killed stage rerun with the same settings continues after the last finished round/batch:
row ids are ``r<round>-p<prompt>``, each round/batch is seeded by its position, so nothing
is duplicated or lost. This module does not join the table, filter or write the dataset
(:mod:`selfguide.methods.selfguide.table`, :mod:`selfguide.methods.selfguide.pipeline`).
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfguide.methods.candidates import unique
from selfguide.methods.checks import text_key
from selfguide.methods.context import StageContext
from selfguide.methods.selfguide import choice, labelling
from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
from selfguide.methods.selfguide.documents import load_passages, passage_for
from selfguide.methods.selfguide.filters import (
    apply,
    demo_template,
    has_structure,
    in_length,
    length_window,
    no_noise,
)
from selfguide.methods.selfguide.prompts import (
    input_generation_prompt,
    passage_start,
    sample_generated,
    with_passage,
)
from selfguide.methods.selfguide.sources import generated_rows
from selfguide.methods.selfguide.table import build_table
from selfguide.runs.events import EventLog, Progress, delta_progress
from selfguide.runs.rundir import as_run
from selfguide.seeding import derive_seed as _seed
from selfguide.settings.fields import SamplingConfig
from selfguide.task.parsing import parse_input
from selfguide.task.spec import TaskSpec
from selfguide.task.structure import InputTemplate

if TYPE_CHECKING:  # pragma: no cover
    from selfguide.backends import Generator

STOPS = labelling.STOPS


def row_id(round_: int, prompt: int) -> str:
    return f"r{round_:03d}-p{prompt:03d}"


# --------------------------------------------------------------------------- token budgets

def _budget(generator: Generator, texts: list[str], configured: int, *, floor: int,
            cap: int) -> int:
    if configured:
        return configured
    longest = max((generator.count_tokens(t) for t in texts), default=16)
    return int(min(cap, max(floor, 2 * longest + 8)))


# --------------------------------------------------------------------------- stage 1

class _Pool:
    """Earlier generated inputs that may be shown in later prompts (filtered, no repeats)."""

    def __init__(self, task: TaskSpec, filters: FilterConfig):
        demos = [d.input for d in task.demos]
        self.lo, self.hi = length_window(demos, filters.length_k, filters.min_words,
                                         filters.max_words)
        self.noise = filters.noise_terms
        self.template, self.min_structure = demo_template(task), filters.min_structure
        self.seen = {text_key(d) for d in demos}
        self.items: list[tuple[str, str]] = []

    def add(self, text: str, target: str) -> None:
        k = text_key(text)
        if text and k not in self.seen and no_noise([text], self.noise)[0] \
                and has_structure([text], self.template, self.min_structure)[0] \
                and in_length([text], self.lo, self.hi)[0]:
            self.items.append((text, target))
        self.seen.add(k)


def _round_plan(task: TaskSpec, cfg: SynthesisConfig, pool: _Pool, rnd: int,
                labels: list[str] | None = None) -> list[tuple[int, str, list]]:
    """``(prompt, target label, shown inputs)`` per prompt of round ``rnd`` (seeded by it);
    targets drawn from ``labels`` (default: all the task's labels)."""
    rng = random.Random(_seed(cfg.seed, "inputs", rnd))
    plan = []
    for p in range(cfg.prompts_per_round):
        target = rng.choice(labels or task.labels) if task.is_classification else ""
        items = pool.items
        if target and cfg.input_prompt == "by_label":  # only inputs written for the target
            items = [it for it in items if it[1] == target]
        shown = sample_generated(items, rng, cfg.min_generated_examples,
                                 cfg.max_generated_examples)
        plan.append((p, target, shown))
    return plan


def _decode_round(task: TaskSpec, cfg: SynthesisConfig, plan: list, rnd: int,
                  missing: set[int], ctx: StageContext, sampling: SamplingConfig, *,
                  progress: Progress, passages: list[dict] = ()) -> list[dict]:
    """The rows of round ``rnd`` whose prompt is in ``missing``.

    The whole round is decoded again (same prompts, same batch, same seed) so a row lost to
    a torn line comes back with exactly its uninterrupted text."""
    template = demo_template(task) if cfg.input_template else InputTemplate()
    grounded = {p: passage_for(passages, cfg.seed, rnd, p, cfg.prompts_per_round)
                for p, _, _ in plan}
    # the user's documents: the first field from the passage where the demos' inputs open
    # with one (Premise: … Hypothesis: …), else the passage shown before the open input
    seeded = {p: passage_start(template, [d.input for d in task.demos], grounded[p]["text"],
                               random.Random(_seed(cfg.seed, "excerpt", rnd, p)))
              if grounded[p] else "" for p, _, _ in plan}
    base = [input_generation_prompt(task, shown, target or None, form=cfg.input_prompt)
            for _, target, shown in plan]
    base = [with_passage(b, task, grounded[p]["text"]) if grounded[p] and not seeded[p] else b
            for (p, _, _), b in zip(plan, base)]
    starts = {p: seeded[p] or template.prefix for p, _, _ in plan}
    prompts = [b + (f" {starts[p]}" if starts[p] else "") for (p, _, _), b in zip(plan, base)]
    s = dataclasses.replace(sampling, seed=_seed(cfg.seed, "inputs-decode", rnd))
    chat = ctx.chat and cfg.input_chat
    outs = ctx.generator.generate(prompts, s, 1, chat=chat, cancel=ctx.cancel,
                                  progress=delta_progress(progress))
    new = []
    for (p, target, shown), comps in zip(plan, outs):
        if p not in missing:
            continue
        raw = comps[0] if comps else ""
        new.append({"id": row_id(rnd, p), "method": "selfguide", "round": rnd,
                    "prompt_id": p, "target_label": target, "raw": raw,
                    "input": with_start(parse_input(raw), starts[p]), "n_shown": len(shown)})
        if grounded[p]:  # the user's documents (issue 36): which passage it was written on
            new[-1].update(passage_id=grounded[p]["id"], passage=grounded[p]["text"])
    if cfg.input_template:
        _fill_slots(demo_template(task), new, {p: b for (p, _, _), b in zip(plan, base)},
                    ctx.generator, dataclasses.replace(s, seed=_seed(cfg.seed, "slots", rnd)),
                    chat=chat, cancel=ctx.cancel)
    return new


def _fill_slots(template, rows: list[dict], base: dict[int, str], generator: Generator,
                sampling: SamplingConfig, *, chat: bool, cancel: Callable[[], bool] | None
                ) -> None:
    """Write the fields a new input lacks, in the demos' order, and let the model fill each
    (issue 39): a row with ``Premise: …`` and no ``Hypothesis:`` is continued from ``…
    \\n Hypothesis:``. One batched pass per missing field at most; what follows the
    template (a repeated field, extra lines) is cut. ``slots`` counts the fields written."""
    if not template.markers or not rows:
        return
    for _ in range(len(template.markers)):
        todo = [(r, template.next_missing(r["input"])) for r in rows if r["input"]]
        # a first field that opens every demo is written by stage 1 (the prompt's start)
        todo = [(r, i) for r, i in todo if i is not None and (i or not template.prefix)]
        if not todo:
            break
        heads = [template.open_field(r["input"], i) for r, i in todo]
        outs = generator.generate([f"{base[r['prompt_id']]} {h}" for (r, _), h in
                                   zip(todo, heads)], sampling, 1, chat=chat, cancel=cancel)
        for (r, _), head, comps in zip(todo, heads, outs):
            field = parse_input(comps[0] if comps else "")
            r["input"] = f"{head} {field}".rstrip() if field else head
            r["slots"] = int(r.get("slots", 0)) + 1
    for r in rows:
        r["input"] = template.trim(r["input"]) if r["input"] else r["input"]


def with_start(text: str, start: str) -> str:
    """The new input with the marker stage 1 wrote for it (not doubled if the model repeated
    it; nothing added to an empty input)."""
    if not start or not text or text.startswith(start):
        return text
    return f"{start} {text}"


def _passing(by_id: dict[str, dict], task: TaskSpec, cfg: SynthesisConfig,
             filters: FilterConfig, rnd: int, given: list[dict] = ()) -> int:
    """How many inputs of the rounds before ``rnd`` (and the ``given`` ones) pass the input
    filters."""
    done_rows = list(given) + [r for r in by_id.values() if r["round"] < rnd
                               and r["prompt_id"] < cfg.prompts_per_round]
    return int(apply(build_table(done_rows, {}, task), filters, task,
                     stage="input")["kept"].sum()) if done_rows else 0


def _more_rounds(by_id: dict[str, dict], task: TaskSpec, cfg: SynthesisConfig,
                 filters: FilterConfig, rnd: int, progress: Progress, events: EventLog,
                 given: list[dict] = ()) -> bool:
    """Whether to run round ``rnd`` (always within ``rounds``; past it while too few inputs
    pass, up to ``round_limit``). With ``given`` inputs (mix ``fill``) a round runs only
    while fewer than the preset's size pass (``min_inputs``, else ``rounds`` x
    ``prompts_per_round``), given ones included."""
    if rnd >= cfg.round_limit:
        return False
    if rnd < cfg.rounds and not given:
        return True
    target = cfg.min_inputs or (cfg.total_prompts if given else 0)
    have = _passing(by_id, task, cfg, filters, rnd, given)
    if have >= target:
        return False
    progress.total += cfg.prompts_per_round if (given or rnd >= cfg.rounds) else 0
    what = f"min_inputs={cfg.min_inputs}" if cfg.min_inputs else f"{target} (the rounds' size)"
    events.emit("log", message=f"round {rnd + 1}: {have} inputs pass the filters"
                               + (f" ({len(given)} of your own)" if given else "")
                               + f", fewer than {what}; adding a round (at most "
                               f"{cfg.round_limit})")
    return True


def generate_inputs(run_dir: str | os.PathLike, task: TaskSpec, cfg: SynthesisConfig,
                    filters: FilterConfig, ctx: StageContext, *,
                    given: list[dict] = ()) -> list[dict]:
    """Stage 1: generate every missing round; returns the generated input rows (old and
    new). ``given``: the user's inputs (mix ``fill``), shown as examples and counted
    towards the preset's size."""
    path = as_run(run_dir).inputs_file
    rows = generated_rows(unique(as_run(run_dir).read_log(path)))
    by_id = {r["id"]: r for r in rows}
    pool = _Pool(task, filters)
    for g in given:
        pool.add(g["input"], "")
    passages = load_passages(run_dir)
    sampling = _input_sampling(task, cfg, ctx.generator)
    progress = ctx.progress("inputs", 0 if given else cfg.total_prompts, unit="prompts",
                            done=sum(1 for r in rows if r["round"] < cfg.rounds))
    ctx.events.emit("stage", stage="inputs", state="start", total=cfg.total_prompts,
                    done=progress.done)
    rnd = 0
    try:
        while _more_rounds(by_id, task, cfg, filters, rnd, progress, ctx.events, given):
            plan = _round_plan(task, cfg, pool, rnd)
            missing = {x[0] for x in plan if row_id(rnd, x[0]) not in by_id}
            if missing:
                new = _decode_round(task, cfg, plan, rnd, missing, ctx, sampling,
                                    progress=progress, passages=passages)
                _save_round(path, new, by_id, ctx)  # the unit of resumption
            for p in range(cfg.prompts_per_round):
                r = by_id[row_id(rnd, p)]
                pool.add(r["input"], r.get("target_label", ""))
            rnd += 1
    finally:
        progress.close()
    ctx.events.emit("stage", stage="inputs", state="done",
                    total=rnd * cfg.prompts_per_round, rounds=rnd)
    # only the rounds this config ran (a run resumed with fewer rounds ignores the rest)
    return sorted((r for r in by_id.values() if r["round"] < rnd
                   and r["prompt_id"] < cfg.prompts_per_round),
                  key=lambda r: (r["round"], r["prompt_id"]))


def _input_sampling(task: TaskSpec, cfg: SynthesisConfig, generator: Generator
                    ) -> SamplingConfig:
    demos = [d.input for d in task.demos]
    return SamplingConfig(
        temperature=cfg.input_temperature, top_p=cfg.input_top_p, stop=STOPS,
        max_new_tokens=_budget(generator, demos, cfg.input_max_new_tokens, floor=32, cap=256))


def topup_round(run_dir: str | os.PathLike, task: TaskSpec, cfg: SynthesisConfig,
                filters: FilterConfig, rnd: int, labels: list[str], ctx: StageContext
                ) -> list[dict]:
    """Stage-1 round ``rnd`` whose prompts ask only for ``labels`` (a top-up for labels
    that came out rare, see :func:`selfguide.methods.selfguide.pipeline.synthesize`): its
    rows, decoded now or read back when a resumed run has them already."""
    path = as_run(run_dir).inputs_file
    rows = generated_rows(unique(as_run(run_dir).read_log(path)))
    by_id = {r["id"]: r for r in rows}
    pool = _Pool(task, filters)
    for r in sorted((r for r in rows if r["round"] < rnd
                     and r["prompt_id"] < cfg.prompts_per_round),
                    key=lambda r: (r["round"], r["prompt_id"])):
        pool.add(r["input"], r.get("target_label", ""))
    plan = _round_plan(task, cfg, pool, rnd, labels)
    missing = {x[0] for x in plan if row_id(rnd, x[0]) not in by_id}
    if missing:
        progress = ctx.progress("top-up", cfg.prompts_per_round, unit="prompts",
                                done=cfg.prompts_per_round - len(missing))
        try:
            new = _decode_round(task, cfg, plan, rnd, missing, ctx,
                                _input_sampling(task, cfg, ctx.generator), progress=progress,
                                passages=load_passages(run_dir))
        finally:
            progress.close()
        _save_round(path, new, by_id, ctx)
    return [by_id[row_id(rnd, p)] for p in range(cfg.prompts_per_round)]


def _save_round(path: Any, new: list[dict], by_id: dict, ctx: StageContext) -> None:
    """Append a decoded round's rows to the inputs file and announce each (``item``)."""
    for r in new:
        r.setdefault("origin", "generated")
    as_run(Path(path).parent).append_log(path, new)
    for r in new:
        by_id[r["id"]] = r
        ctx.events.emit("item", stage="inputs", id=r["id"], round=r["round"],
                        input=r["input"], target_label=r["target_label"])
        if ctx.on_item is not None:
            ctx.on_item(r)


# --------------------------------------------------------------------------- stage 2

def annotate(run_dir: str | os.PathLike, task: TaskSpec, cfg: SynthesisConfig, ids_inputs:
             list[tuple[str, str]], ctx: StageContext) -> dict[str, dict]:
    """Stage 2: sample answers (and label scores) for every (id, input) not yet annotated.

    First the labelling protocol is settled (:func:`label_protocol`: from the demos and a
    probe of the inputs, stored in ``labelling.json``); every input is then labelled in it.
    """
    path = as_run(run_dir).annotations_file
    generator = ctx.generator

    def pending() -> list[tuple[str, str]]:
        done = {r["id"] for r in as_run(run_dir).read_log(path)}
        return [(i, x) for i, x in ids_inputs if i not in done]

    progress = ctx.progress("annotate", len(ids_inputs), unit="inputs",
                            done=len(ids_inputs) - len(pending()))
    ctx.events.emit("stage", stage="annotate", state="start", total=len(ids_inputs),
                    done=progress.done)
    try:
        protocol = label_protocol(run_dir, task, cfg, ids_inputs, ctx)["protocol"]
    except BaseException:
        progress.close()
        raise
    todo = pending()
    progress.update(len(ids_inputs) - len(todo) - progress.done)  # the reused probe
    done = {r["id"]: r for r in unique(as_run(run_dir).read_log(path))}
    sampling = labelling.sampling_for(task, generator, temperature=cfg.output_temperature,
                                      max_new_tokens=cfg.output_max_new_tokens)

    def save(recs: list[dict]) -> None:
        as_run(run_dir).append_log(path, recs)  # the batch is the unit of resumption
        done.update({r["id"]: r for r in recs})

    try:
        labelling.label_batches(task, todo, generator, protocol, sampling, cfg.n_samples,
                                batch=cfg.annotate_batch, score=cfg.score_labels,
                                seed=lambda first: _seed(cfg.seed, "annotate", first),
                                on_batch=save, cancel=ctx.cancel, progress=progress,
                                answer=labelling.answer_protocol(ctx.chat))
    finally:
        progress.close()
    ctx.events.emit("stage", stage="annotate", state="done", total=len(ids_inputs))
    return done


def label_protocol(run_dir: str | os.PathLike, task: TaskSpec, cfg: SynthesisConfig,
                   ids_inputs: list[tuple[str, str]], ctx: StageContext) -> dict:
    """The protocol stage 2 labels in, with its evidence (``labelling.json``; computed once).

    Leave-one-out on the demos in every candidate protocol, plus (classification) a probe of
    the first ``probe_inputs`` inputs labelled in each; the chosen protocol's probe records
    become the first annotations. A model without chat use labels as plain text.
    """
    run = as_run(run_dir)
    stored = run.read_labelling()
    if stored and stored.get("protocol"):
        return stored
    events, generator, chat = ctx.events, ctx.generator, ctx.chat
    wanted = cfg.label_protocol
    protocols = choice.protocols_to_try(wanted, chat)
    probe = ids_inputs[:cfg.probe_inputs] if task.is_classification else []
    events.emit("log", message=f"labelling evidence: {len(task.demos)} demos left out one "
                               f"at a time, {len(probe)} probe inputs, protocols "
                               f"{', '.join(protocols)}")
    sampling = labelling.sampling_for(task, generator, temperature=cfg.output_temperature,
                                      max_new_tokens=cfg.output_max_new_tokens,
                                      seed=_seed(cfg.seed, "probe"))
    evidence, probe_recs = labelling.gather_evidence(
        task, generator, [x for _, x in probe], protocols, sampling, cfg.n_samples,
        cancel=ctx.cancel, score=cfg.score_labels, answer=labelling.answer_protocol(chat))
    pick = choice.pick_protocol(evidence, wanted, chat)
    recs = probe_recs.get(pick["protocol"]) or []
    # A run killed between this append and labelling.json below computes the same probe
    # again; the rows already appended are not appended twice.
    have = {r.get("id") for r in run.read_log(run.annotations_file)} if recs else set()
    new = [{"id": i, **r} for (i, _), r in zip(probe, recs) if i not in have]
    if new:
        run.append_log(run.annotations_file, new)
    out = {**pick, "requested": wanted, "evidence": evidence}
    run.write_labelling(out)
    events.emit("log", message=pick["reason"])
    if pick.get("beats_chance") is False:
        events.emit("warning", message="No way of self-labelling beat chance on the demos: "
                                       "the labels will be the model's own answers, which "
                                       "carry the answer format, not the task. A bigger "
                                       "model would help.")
    return out


