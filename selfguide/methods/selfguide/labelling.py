"""Self-labelling (SELF-GUIDE stage 2): how the model labels an input, and the evidence of
how well it does.

What it does: :func:`annotate` labels inputs in one *protocol*, ``chat`` (THE task prompt in
the model's chat template: how evaluation and the tuned model answer) or ``plain`` (the same
text continued after ``Output:``), with ``n`` sampled answers (the self-consistency vote)
and, for classification, every label's log-probability, both in that protocol -- and in
the *answer* protocol (:func:`answer_protocol`) too when that is another one, for the
``own`` labels. :func:`self_labels` turns them into one label per input per *strategy*:
``vote``, ``rank`` (the likeliest label) or ``calibrated`` (log-prob minus its mean over
the inputs). :func:`gather_evidence` collects what the user's own data say -- never test
rows: leave-one-out on the demos, and on a probe of the generated inputs the share of
samples that name a label, how degenerate each strategy is, how often vote and rank agree.

What it does not do: choose from that evidence (:mod:`selfguide.methods.selfguide.choice`),
read or write run files (the pipeline stores the evidence in ``labelling.json``), filter
rows (``selfguide.methods.selfguide.filters``), or pick prompts (``prompts``).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from selfguide.errors import ScoringUnavailable
from selfguide.methods.selfguide.consistency import clean_samples, consensus, vote_samples
from selfguide.methods.selfguide.strategies import SELF_STRATEGIES
from selfguide.runs.events import Progress, delta_progress
from selfguide.settings.fields import SamplingConfig
from selfguide.task.parsing import map_label, parse_output
from selfguide.task.prompts import task_prompt
from selfguide.task.spec import TaskSpec

if TYPE_CHECKING:  # pragma: no cover
    from selfguide.backends import Generator

PROTOCOLS = ("chat", "plain")
STOPS = ("\nInput:", "\nAnswer:", "\nOutput:", "\n\n")


def sampling_for(task: TaskSpec, generator: Generator, *, temperature: float,
                 max_new_tokens: int = 0, seed: int = 0) -> SamplingConfig:
    """The answer sampling of stage 2: stop at the next block (one line for labels)."""
    if not max_new_tokens:
        longest = max((generator.count_tokens(d.output) for d in task.demos), default=4)
        max_new_tokens = int(min(512, max(8, 2 * longest + 8)))
    return SamplingConfig(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                          stop=STOPS + ("\n",) if task.is_classification else STOPS,
                          stop_loops=not task.is_classification)


def options(task: TaskSpec, protocol: str) -> list[str]:
    """The label continuations to score: a chat answer starts bare, plain text after
    ``Output:`` with a space."""
    return [lab if protocol == "chat" else " " + lab for lab in task.labels]


def score_labels(task: TaskSpec, generator: Generator, prompts: Sequence[str],
                 protocol: str) -> list[list[float]]:
    """Every label's log-probability as the answer to each prompt, in ``protocol``."""
    return generator.score_options(prompts, options(task, protocol), chat=protocol == "chat")


def answer_protocol(chat: bool) -> str:
    """The protocol the model answers in at evaluation and after training."""
    return "chat" if chat else "plain"


def annotate(task: TaskSpec, inputs: Sequence[str], generator: Generator, protocol: str,
             sampling: SamplingConfig, n: int, *, score: bool = True,
             demos_for: Callable[[int], TaskSpec] | None = None,
             cancel: Callable[[], bool] | None = None, progress: Any = None,
             answer: str | None = None) -> list[dict]:
    """``[{"samples", "label_scores", "protocol"}]`` for each input, in order.

    ``demos_for(i)`` gives the task whose demos prompt input ``i`` (leave-one-out); by
    default every input is prompted with ``task``. ``answer`` (classification, scored):
    the protocol the model answers in; when ``protocol`` is not ``chat`` the records also
    get ``answer_scores``, the label scores in ``answer`` (what the ``own`` labels rank;
    for ``chat`` they are ``label_scores``).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown labelling protocol {protocol!r}")
    chat = protocol == "chat"
    prompts = [task_prompt(demos_for(i) if demos_for else task, x)
               for i, x in enumerate(inputs)]
    if not prompts:
        return []
    n = 1 if sampling.temperature == 0.0 else n
    outs = generator.generate(prompts, sampling, n, chat=chat, cancel=cancel,
                              progress=progress)
    scores: list[Any] = [None] * len(prompts)
    if score and task.is_classification:
        try:
            scores = score_labels(task, generator, prompts, protocol)
        except ScoringUnavailable as exc:  # a server without logprobs: vote/target still work
            logging.getLogger(__name__).warning("%s", str(exc).splitlines()[0])
    recs = [{"samples": list(o), "label_scores": None if s is None else list(s),
             "protocol": protocol} for o, s in zip(outs, scores)]
    if answer and protocol != "chat" and any(s is not None for s in scores):
        extra = scores if answer == protocol else score_labels(task, generator, prompts, answer)
        for r, s in zip(recs, extra):
            r["answer_scores"] = None if s is None else list(s)
    return recs


def label_batches(task: TaskSpec, items: Sequence[tuple[str, str]], generator: Generator,
                  protocol: str, sampling: SamplingConfig, n: int, *, batch: int,
                  seed: Callable[[str], int], score: bool = True,
                  on_batch: Callable[[list[dict]], None] | None = None,
                  cancel: Callable[[], bool] | None = None, progress: Progress | None = None,
                  answer: str | None = None) -> list[dict]:
    """:func:`annotate` over ``(id, input)`` items in batches seeded by ``seed(first id)``;
    each record gets its ``id``; ``on_batch`` sees every finished batch (stage 2 appends it
    to ``annotations.jsonl``, the unit of resumption); ``progress`` counts every batch."""
    out: list[dict] = []
    for start in range(0, len(items), batch):
        part = items[start:start + batch]
        s = dataclasses.replace(sampling, seed=seed(part[0][0]))
        recs = annotate(task, [x for _, x in part], generator, protocol, s, n, score=score,
                        cancel=cancel, progress=progress and delta_progress(progress),
                        answer=answer)
        recs = [{"id": i, **r} for (i, _), r in zip(part, recs)]
        if on_batch is not None:
            on_batch(recs)
        out.extend(recs)
    return out


def _means(scores: Sequence[Sequence[float] | None], k: int) -> list[float] | None:
    rows = [list(s) for s in scores if s is not None and len(s) == k]
    if not rows:
        return None
    return [statistics.fmean(r[j] for r in rows) for j in range(k)]


def self_labels(task: TaskSpec, records: Sequence[dict], *,
                means: Sequence[float] | None = None) -> dict[str, list[str]]:
    """Classification: one label per record per strategy ("" = none).

    ``calibrated`` subtracts ``means`` (each label's mean score; default: over ``records``).
    """
    labels = list(task.labels)
    k = len(labels)
    votes = [vote_samples(r.get("samples") or [], labels) for r in records]
    out = {"vote": [(map_label(v.output, labels) or "") for v in votes]}
    scores = [r.get("label_scores") for r in records]
    means = list(means) if means is not None else _means(scores, k)
    rank, cal = [], []
    for s in scores:
        if s is None or len(s) != k:
            rank.append("")
            cal.append("")
            continue
        rank.append(labels[max(range(k), key=lambda j: s[j])])
        c = [s[j] - (means[j] if means else 0.0) for j in range(k)]
        cal.append(labels[max(range(k), key=lambda j: c[j])])
    out["rank"], out["calibrated"] = rank, cal
    return out


def mapped_share(task: TaskSpec, records: Sequence[dict]) -> float:
    """Share of all samples that name exactly one label."""
    labels = list(task.labels)
    samples = [s for r in records for s in (r.get("samples") or [])]
    if not samples:
        return 0.0
    ok = sum(1 for s in samples if map_label(parse_output(s, single_line=True), labels))
    return ok / len(samples)


def top_share(labels: Sequence[str]) -> float:
    """Share of the most common label among the labelled rows (1.0 = all one label)."""
    c = Counter(x for x in labels if x)
    return max(c.values()) / sum(c.values()) if c else 1.0


# --------------------------------------------------------------------------- evidence

def leave_one_out(task: TaskSpec) -> Callable[[int], TaskSpec]:
    """``i -> task`` without demo ``i`` (the demos it is prompted with)."""
    def without(i: int) -> TaskSpec:
        return dataclasses.replace(task, demos=tuple(d for j, d in enumerate(task.demos)
                                                     if j != i))
    return without


def protocol_evidence(task: TaskSpec, generator: Generator, protocol: str,
                      probe: Sequence[str], sampling: SamplingConfig, n: int, *,
                      cancel: Callable[[], bool] | None = None, score: bool = True
                      ) -> tuple[dict, list[dict]]:
    """(evidence for one protocol, the probe's annotation records). ``score=False`` (or a
    backend without log-probabilities) leaves rank and calibrated labels out: the evidence
    then says ``scored: false`` and only the vote can be chosen."""
    demos = list(task.demos)
    loo = annotate(task, [d.input for d in demos], generator, protocol, sampling, n,
                   demos_for=leave_one_out(task), cancel=cancel,
                   score=score) if len(demos) > 1 else []
    if not task.is_classification:
        from selfguide.evaluation.metrics import rouge_l
        from selfguide.methods.selfguide.relation import task_relation

        # Which protocol answers better: its samples' own consensus. Stage 2's candidate
        # "no edit" (light edits) is the same for every protocol and can hide the
        # difference: where a protocol's samples scatter, it would score as copying the input.
        if task_relation(task).edits_lightly:
            outs = [consensus(clean_samples(r["samples"])).output for r in loo]
        else:
            outs = [vote_samples(r["samples"], source=d.input).output
                    for r, d in zip(loo, demos)]
        scores = [rouge_l(o, [d.output]) for o, d in zip(outs, demos)]
        return {"protocol": protocol, "demos": len(loo),
                "loo_rouge_l": round(statistics.fmean(scores), 4) if scores else None,
                "loo_answers": outs}, []
    recs = annotate(task, list(probe), generator, protocol, sampling, n, cancel=cancel,
                    score=score)
    k = len(task.labels)
    means = _means([r["label_scores"] for r in recs], k)
    gold = [d.output for d in demos]
    loo_labels = self_labels(task, loo, means=means) if loo else {}
    probe_labels = self_labels(task, recs) if recs else {}
    strategies = {}
    for s in SELF_STRATEGIES:
        got = loo_labels.get(s, [])
        plabs = probe_labels.get(s, [])
        strategies[s] = {
            "loo_correct": sum(1 for a, b in zip(got, gold) if a == b),
            "loo_answers": got,
            "probe_labels": dict(Counter(x for x in plabs if x)),
            "probe_labelled": sum(1 for x in plabs if x),
            "probe_top_share": round(top_share(plabs), 4) if plabs else None,
        }
    agree = [a == b for a, b in zip(probe_labels.get("vote", []), probe_labels.get("rank", []))
             if a and b]
    return {"protocol": protocol, "demos": len(loo), "probe": len(recs),
            "scored": any(r.get("label_scores") is not None for r in loo + recs),
            "mapped_share": round(mapped_share(task, loo + recs), 4),
            "vote_rank_agreement": round(sum(agree) / len(agree), 4) if agree else None,
            "strategies": strategies}, recs


def gather_evidence(task: TaskSpec, generator: Generator, probe: Sequence[str],
                    protocols: Sequence[str], sampling: SamplingConfig, n: int, *,
                    cancel: Callable[[], bool] | None = None, score: bool = True,
                    answer: str | None = None) -> tuple[dict, dict[str, list[dict]]]:
    """({"protocols": {p: evidence}, "chance": ..., "answer_protocol": ...},
    {p: probe records}). ``answer`` defaults to chat when it is among ``protocols``; the
    probe records of any other protocol get ``answer_scores`` (see :func:`annotate`)."""
    answer = answer or ("chat" if "chat" in protocols else "plain")
    ev, recs = {}, {}
    for p in protocols:
        ev[p], recs[p] = protocol_evidence(task, generator, p, probe, sampling, n,
                                           cancel=cancel, score=score)
    _attach_answer_scores(task, generator, probe, recs, answer)
    chance = 1.0 / len(task.labels) if task.is_classification and task.labels else None
    return {"task_type": task.task_type, "demos": len(task.demos), "chance": chance,
            "answer_protocol": answer, "probe_inputs": list(probe), "protocols": ev}, recs


def _attach_answer_scores(task: TaskSpec, generator: Generator, probe: Sequence[str],
                          recs: dict[str, list[dict]], answer: str) -> None:
    for p, rs in recs.items():
        if p == "chat" or not rs or not any(r.get("label_scores") for r in rs):
            continue
        if answer == p:
            scores = [r.get("label_scores") for r in rs]
        elif recs.get(answer):
            scores = [r.get("label_scores") for r in recs[answer]]
        else:
            prompts = [task_prompt(task, x) for x in probe]
            scores = score_labels(task, generator, prompts, answer)
        for r, sc in zip(rs, scores):
            r["answer_scores"] = None if sc is None else list(sc)
