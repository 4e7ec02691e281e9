"""Self-labelling (SELF-GUIDE stage 2): how the model labels an input, and which way of
labelling this task's model can stand behind.

What it does: :func:`annotate` labels inputs in one *protocol*, ``chat`` (THE task prompt in
the model's chat template: how evaluation and the tuned model answer) or ``plain`` (the same
text continued after ``Output:``), with ``n`` sampled answers (the self-consistency vote)
and, for classification, every label's log-probability, both in that protocol.
:func:`self_labels` turns them into one label per input per *strategy*: ``vote``, ``rank``
(the likeliest label) or ``calibrated`` (log-prob minus its mean over the inputs).
:func:`gather_evidence` collects what the user's own data say -- never test rows:
leave-one-out on the demos, and on a probe of the generated inputs the share of samples
that name a label, how degenerate each strategy is, how often vote and rank agree.
:func:`choose_protocol` / :func:`choose_strategy` pick from it; :func:`explain` says why.

What it does not do: read or write run files (the pipeline stores the evidence in
``labelling.json``), filter rows (``selfguide.methods.selfguide.filters``), or pick
prompts (``prompts``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from selfguide.config import SamplingConfig
from selfguide.errors import ScoringUnavailable
from selfguide.events import Progress, delta_progress
from selfguide.methods.selfguide.consistency import vote_samples
from selfguide.parsing import map_label, parse_output
from selfguide.prompts import task_prompt
from selfguide.task import TaskSpec

if TYPE_CHECKING:  # pragma: no cover
    from selfguide.backends import Generator

PROTOCOLS = ("chat", "plain")
SELF_STRATEGIES = ("rank", "vote", "calibrated")  # preference order on equal evidence
STOPS = ("\nInput:", "\nAnswer:", "\nOutput:", "\n\n")
DEGENERATE_SHARE = 0.8   # one label above this share of a probe = degenerate
MIN_MAPPED = 0.5         # vote needs at least this share of samples that name a label


def sampling_for(task: TaskSpec, generator: Generator, *, temperature: float,
                 max_new_tokens: int = 0, seed: int = 0) -> SamplingConfig:
    """The answer sampling of stage 2: stop at the next block (one line for labels)."""
    if not max_new_tokens:
        longest = max((generator.count_tokens(d.output) for d in task.demos), default=4)
        max_new_tokens = int(min(512, max(8, 2 * longest + 8)))
    return SamplingConfig(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                          stop=STOPS + ("\n",) if task.is_classification else STOPS)


def options(task: TaskSpec, protocol: str) -> list[str]:
    """The label continuations to score: a chat answer starts bare, plain text after
    ``Output:`` with a space."""
    return [lab if protocol == "chat" else " " + lab for lab in task.labels]


def annotate(task: TaskSpec, inputs: Sequence[str], generator: Generator, protocol: str,
             sampling: SamplingConfig, n: int, *, score: bool = True,
             demos_for: Callable[[int], TaskSpec] | None = None,
             cancel: Callable[[], bool] | None = None, progress: Any = None) -> list[dict]:
    """``[{"samples", "label_scores", "protocol"}]`` for each input, in order.

    ``demos_for(i)`` gives the task whose demos prompt input ``i`` (leave-one-out); by
    default every input is prompted with ``task``.
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
            scores = generator.score_options(prompts, options(task, protocol), chat=chat)
        except ScoringUnavailable as exc:  # a server without logprobs: vote/target still work
            logging.getLogger(__name__).warning("%s", str(exc).splitlines()[0])
    return [{"samples": list(o), "label_scores": None if s is None else list(s),
             "protocol": protocol} for o, s in zip(outs, scores)]


def label_batches(task: TaskSpec, items: Sequence[tuple[str, str]], generator: Generator,
                  protocol: str, sampling: SamplingConfig, n: int, *, batch: int,
                  seed: Callable[[str], int], score: bool = True,
                  on_batch: Callable[[list[dict]], None] | None = None,
                  cancel: Callable[[], bool] | None = None, progress: Progress | None = None
                  ) -> list[dict]:
    """:func:`annotate` over ``(id, input)`` items in batches seeded by ``seed(first id)``;
    each record gets its ``id``; ``on_batch`` sees every finished batch (stage 2 appends it
    to ``annotations.jsonl``, the unit of resumption); ``progress`` counts every batch."""
    out: list[dict] = []
    for start in range(0, len(items), batch):
        part = items[start:start + batch]
        s = dataclasses.replace(sampling, seed=seed(part[0][0]))
        recs = annotate(task, [x for _, x in part], generator, protocol, s, n, score=score,
                        cancel=cancel, progress=progress and delta_progress(progress))
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
        from selfguide.metrics import rouge_l

        outs = [vote_samples(r["samples"], source=d.input).output for r, d in zip(loo, demos)]
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
                    cancel: Callable[[], bool] | None = None, score: bool = True
                    ) -> tuple[dict, dict[str, list[dict]]]:
    """({"protocols": {p: evidence}, "chance": ...}, {p: probe records})."""
    ev, recs = {}, {}
    for p in protocols:
        ev[p], recs[p] = protocol_evidence(task, generator, p, probe, sampling, n,
                                           cancel=cancel, score=score)
    chance = 1.0 / len(task.labels) if task.is_classification and task.labels else None
    return {"task_type": task.task_type, "demos": len(task.demos), "chance": chance,
            "probe_inputs": list(probe), "protocols": ev}, recs


# --------------------------------------------------------------------------- choices

def _candidates(evidence: dict, protocols: Sequence[str]) -> list[dict]:
    out = []
    for p in protocols:
        pe = evidence["protocols"].get(p)
        if not pe:
            continue
        for s in SELF_STRATEGIES:
            st = pe["strategies"][s]
            usable = not (s == "vote" and pe.get("mapped_share", 0.0) < MIN_MAPPED) and \
                (s == "vote" or pe.get("scored", True))  # rank/calibrated need scores
            top = st.get("probe_top_share")
            degenerate = top is None or top > DEGENERATE_SHARE
            out.append({"protocol": p, "strategy": s, "loo_correct": st["loo_correct"],
                        "usable": usable, "degenerate": degenerate})
    return out


def _rank_key(c: dict) -> tuple:
    return (c["usable"], not c["degenerate"], c["loo_correct"], c["protocol"] == "chat",
            -SELF_STRATEGIES.index(c["strategy"]))


def choose_protocol(evidence: dict) -> dict:
    """``{"protocol", "strategy", "beats_chance", "reason"}`` from the evidence.

    Classification: the (protocol, strategy) pair that is usable (vote needs answers that
    name a label), not degenerate on the probe (no label above 80%), then answers most demos
    correctly in leave-one-out, then chat (the protocol the model is evaluated and used
    in). Generation: the protocol with the higher leave-one-out ROUGE-L, chat on ties.
    """
    prots = [p for p in PROTOCOLS if p in evidence["protocols"]]
    if evidence["task_type"] != "classification":
        best = max(prots, key=lambda p: ((evidence["protocols"][p].get("loo_rouge_l") or 0.0),
                                         p == "chat"))
        return {"protocol": best, "strategy": None, "beats_chance": True,
                "reason": explain(evidence, best, None)}
    cands = _candidates(evidence, prots)
    best = max(cands, key=_rank_key)
    return {"protocol": best["protocol"], "strategy": best["strategy"],
            "beats_chance": beats_chance(evidence, best["protocol"], best["strategy"]),
            "reason": explain(evidence, best["protocol"], best["strategy"])}


def beats_chance(evidence: dict, protocol: str, strategy: str | None) -> bool:
    """More demos right in leave-one-out than guessing would get on average (None: fewer
    than two demos, so nothing to leave out)."""
    if strategy is None or evidence.get("chance") is None:
        return True
    pe = evidence["protocols"].get(protocol) or {}
    d = pe.get("demos", 0)
    if not d:
        return None
    return pe["strategies"][strategy]["loo_correct"] > evidence["chance"] * d


def choose_strategy(evidence: dict | None, protocol: str, table_labels: dict[str, list[str]]
                    ) -> dict:
    """The label strategy for ``label_strategy="auto"`` once every input is annotated.

    Same rule as :func:`choose_protocol` within ``protocol``, with degeneracy measured on
    all annotated inputs (``table_labels``: strategy -> labels). When no self-label strategy
    beats chance on the demos the answer is ``target`` (the label each input was written
    for): the data then teach the answer format only, and the report says so.
    """
    if not evidence or protocol not in evidence.get("protocols", {}):
        return {"strategy": "vote", "beats_chance": None,
                "reason": "No labelling evidence is stored for this run; using the "
                          "majority vote of the samples (the paper's rule)."}
    pe = evidence["protocols"][protocol]
    cands = []
    for c in _candidates(evidence, [protocol]):
        labs = table_labels.get(c["strategy"], [])
        if labs:
            c["degenerate"] = top_share(labs) > DEGENERATE_SHARE
        cands.append(c)
    best = max(cands, key=_rank_key)
    if beats_chance(evidence, protocol, best["strategy"]) is None:
        return {"strategy": best["strategy"], "beats_chance": None,
                "best_self": best["strategy"],
                "reason": f"With one demo there is nothing to leave out, so the labels cannot "
                          f"be checked against the demos; using {_SNAMES[best['strategy']]} "
                          f"(the least degenerate on the inputs). Add demos to get a check."}
    if not beats_chance(evidence, protocol, best["strategy"]):
        d = pe.get("demos", 0)
        return {"strategy": "target", "beats_chance": False, "best_self": best["strategy"],
                "reason": f"No way of self-labelling beat chance on the demos (best: "
                          f"{best['loo_correct']} of {d} right, chance "
                          f"{evidence['chance'] * d:g} of {d}), so each input keeps the "
                          f"label it was written for; training will teach the answer "
                          f"format, not the task. A bigger model would help."}
    return {"strategy": best["strategy"], "beats_chance": True, "best_self": best["strategy"],
            "reason": explain(evidence, protocol, best["strategy"])}


def table_labels(df: Any, task: TaskSpec) -> dict[str, list[str]]:
    """Strategy -> labels over the annotated rows of a candidates table."""
    from selfguide.methods.selfguide.strategies import calibrated_labels, rank_labels

    rows = df[[s is not None and len(s) > 0 for s in df["samples"]]] \
        if "samples" in df.columns else df.iloc[0:0]
    labels = list(task.labels)
    scores = rows["label_scores"].tolist() if "label_scores" in rows.columns else []
    return {"vote": rows["label_vote"].fillna("").astype(str).tolist()
            if "label_vote" in rows.columns else [],
            "rank": rank_labels(scores, labels), "calibrated": calibrated_labels(scores,
                                                                                 labels)[0]}


def resolve_filters(df: Any, task: TaskSpec, cfg: Any, stored: dict | None) -> tuple[Any, dict]:
    """(filter config with a concrete label strategy, the labelling choice for the report).

    ``stored`` is the run's ``labelling.json``. A strategy the user set is kept as it is;
    ``auto`` becomes :func:`choose_strategy`'s pick.
    """
    stored = stored or {}
    protocol = stored.get("protocol")
    choice = {"protocol": protocol, "protocol_chosen_by": stored.get("chosen_by"),
              "protocol_reason": stored.get("reason"), "requested": cfg.label_strategy}
    if not task.is_classification:
        return cfg, {**choice, "strategy": None, "strategy_chosen_by": None,
                     "beats_chance": True, "reason": stored.get("reason")}
    if cfg.label_strategy != "auto":
        ev = stored.get("evidence")
        bc = beats_chance(ev, protocol, cfg.label_strategy) if ev and protocol and \
            cfg.label_strategy in SELF_STRATEGIES else None
        return cfg, {**choice, "strategy": cfg.label_strategy, "strategy_chosen_by": "user",
                     "beats_chance": bc, "reason": f"Label strategy {cfg.label_strategy} "
                                                   f"was set by hand."}
    pick = choose_strategy(stored.get("evidence"), protocol or "", table_labels(df, task))
    return dataclasses.replace(cfg, label_strategy=pick["strategy"]), {
        **choice, "strategy": pick["strategy"], "strategy_chosen_by": "auto",
        "beats_chance": pick["beats_chance"], "reason": pick["reason"]}


_NAMES = {"chat": "in chat form", "plain": "as plain text"}
_SNAMES = {"vote": "majority vote of the samples", "rank": "the likeliest label",
           "calibrated": "the likeliest label after calibration"}


def explain(evidence: dict, protocol: str, strategy: str | None) -> str:
    """One sentence per protocol of what the model got right on the demos, then the pick."""
    parts = []
    for p in PROTOCOLS:
        pe = evidence["protocols"].get(p)
        if not pe:
            continue
        if evidence["task_type"] != "classification":
            r = pe.get("loo_rouge_l")
            parts.append(f"{_NAMES[p]} its answers to the demos score ROUGE-L "
                         f"{'-' if r is None else f'{100 * r:.0f}'}")
            continue
        s = strategy if strategy and p == protocol else max(
            SELF_STRATEGIES, key=lambda x: pe["strategies"][x]["loo_correct"])
        parts.append(f"{pe['strategies'][s]['loo_correct']} of {pe['demos']} demos right "
                     f"{_NAMES[p]}")
    head = "The model labelled " + "; ".join(parts) if evidence["task_type"] == \
        "classification" else "Leave-one-out on the demos: " + "; ".join(parts)
    pick = f"labelling {_NAMES[protocol]}"
    if strategy:
        pick += f" with {_SNAMES[strategy]}"
    return f"{head}. Chosen: {pick}."


def label_accuracy(pred: Sequence[str], gold: Sequence[str]) -> float:
    """Share of rows whose label equals the reference (nan without rows)."""
    return sum(a == b for a, b in zip(pred, gold)) / len(gold) if gold else math.nan
