"""Which way of self-labelling this task's model can stand behind (SELF-GUIDE stage 2).

What it does: :func:`choose_protocol` (before stage 2, from the demos and a probe) and
:func:`choose_strategy` (after it, from every annotated input) pick the protocol and the
label strategy from the evidence of :mod:`selfguide.methods.selfguide.labelling` -- never
from test rows; :func:`resolve_filters` turns ``label_strategy="auto"`` into that pick for
the filters; :func:`explain` says why in plain words.

The rule: a self-label strategy is trusted when it labels more demos right leave-one-out
than chance *and* its labels follow the label each generated input was written for more
often than chance (:func:`~selfguide.methods.selfguide.strategies.agreement`). When none
is trusted the labels are ``own``: the label the model finds likeliest in the protocol it
*answers* in (chat form when it has a chat template), the label shares left as they come.
Why: labels that do not follow their inputs teach a prior, not the task (a tuned model
trained on balanced noise answers one label to everything, whichever the coin picks);
training on the model's own answers in its answer form teaches the format and keeps its
choices -- it does no harm.

What it does not do: call a model, or read or write run files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from selfguide.methods.selfguide.labelling import PROTOCOLS, top_share
from selfguide.methods.selfguide.strategies import (AUTO, AUTO_FALLBACKS,
                                                    AUTO_WITHOUT_EVIDENCE, BY_NAME, OWN,
                                                    SELF_STRATEGIES, agreement,
                                                    labels_by_strategy)
from selfguide.task.spec import TaskSpec

DEGENERATE_SHARE = 0.8   # one label above this share of a probe = degenerate
MIN_MAPPED = 0.5         # vote needs at least this share of samples that name a label
AGREEMENT_ALPHA = 0.05   # agreement with the asked-for label must beat chance at this level


@dataclasses.dataclass(frozen=True)
class LabelChoice:
    """How a run's labels are made: the protocol stage 2 labelled in and the label
    strategy the filters use, who chose each (``"auto"``, ``"user"``, ``"model"``: a model
    without chat use labels as plain text) and why. ``dataset/report.json`` records it as
    ``labelling`` (:meth:`to_dict`); :meth:`from_dict` reads any report's, old ones too.

    ``strategy_chosen_by`` is None for a generation task (no label strategy).
    """

    protocol: str | None = None
    protocol_chosen_by: str | None = None
    protocol_reason: str | None = None
    requested: str | None = None          # the label_strategy setting (may be auto)
    strategy: str | None = None
    strategy_chosen_by: str | None = None
    answer_protocol: str | None = None    # the protocol the model answers in (own labels)
    agreement: dict | None = None         # strategies.agreement of the auto pick
    best_self: str | None = None          # the best self-label strategy when auto
    beats_chance: bool | None = None
    reason: str | None = None
    run: str | None = None                # selfguide label: the run it was taken from

    def to_dict(self) -> dict:
        """The JSON form, with the keys the report has always had for its kind of choice
        (generation: no strategy details; set by hand: no auto evidence)."""
        skip = {"run"} if self.run is None else set()
        if self.strategy_chosen_by is None:
            skip |= {"answer_protocol", "agreement", "best_self"}
        elif self.strategy_chosen_by != AUTO:
            skip |= {"agreement", "best_self"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in skip}

    @classmethod
    def from_dict(cls, d: Any) -> LabelChoice | None:
        """The choice a report recorded (None for none); unknown keys are ignored, missing
        ones are None."""
        if not isinstance(d, dict) or not d:
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def message(self) -> str:
        """What the labels are and why, in one paragraph ("" when nothing says why)."""
        text = self.protocol_reason or ""
        if self.strategy and self.reason and self.reason != text:
            text = (text + " " if text and self.strategy_chosen_by == "user" else "") \
                + self.reason
        return text


def _candidates(evidence: dict, protocols: Sequence[str]) -> list[dict]:
    out = []
    for p in protocols:
        pe = evidence["protocols"].get(p)
        if not pe:
            continue
        for s in SELF_STRATEGIES:
            st = pe["strategies"][s]
            # rank/calibrated need label scores; vote needs answers that name a label
            usable = pe.get("scored", True) if BY_NAME[s].needs_scores else \
                pe.get("mapped_share", 0.0) >= MIN_MAPPED
            top = st.get("probe_top_share")
            degenerate = top is None or top > DEGENERATE_SHARE
            out.append({"protocol": p, "strategy": s, "loo_correct": st["loo_correct"],
                        "usable": usable, "degenerate": degenerate})
    return out


def _rank_key(c: dict) -> tuple:
    return (c["usable"], not c["degenerate"], c["loo_correct"], c["protocol"] == "chat",
            -SELF_STRATEGIES.index(c["strategy"]))


def answer_of(evidence: dict) -> str:
    """The answer protocol the evidence was gathered for (chat unless only plain ran)."""
    return evidence.get("answer_protocol") or ("chat" if "chat" in evidence["protocols"]
                                               else "plain")


def choose_protocol(evidence: dict) -> dict:
    """``{"protocol", "strategy", "beats_chance", "reason"}`` from the evidence.

    Classification: the (protocol, strategy) pair that is usable (vote needs answers that
    name a label), not degenerate on the probe (no label above 80%), then answers most demos
    correctly in leave-one-out, then chat (the protocol the model is evaluated and used
    in). When even that pair does not beat chance on the demos, the labels will be the
    model's own answers (:data:`OWN`), so the answer protocol is taken. Generation: the
    protocol with the higher leave-one-out ROUGE-L, chat on ties.
    """
    prots = [p for p in PROTOCOLS if p in evidence["protocols"]]
    if evidence["task_type"] != "classification":
        best = max(prots, key=lambda p: ((evidence["protocols"][p].get("loo_rouge_l") or 0.0),
                                         p == "chat"))
        return {"protocol": best, "strategy": None, "beats_chance": True,
                "reason": explain(evidence, best, None)}
    cands = _candidates(evidence, prots)
    best = max(cands, key=_rank_key)
    beats = beats_chance(evidence, best["protocol"], best["strategy"])
    protocol = best["protocol"]
    if beats is False and answer_of(evidence) in prots:
        protocol = answer_of(evidence)
    return {"protocol": protocol, "strategy": best["strategy"], "beats_chance": beats,
            "reason": explain(evidence, protocol, best["strategy"] if protocol ==
                              best["protocol"] else None)}


def protocols_to_try(wanted: str, chat: bool) -> tuple[str, ...]:
    """The protocols stage 2 weighs for the ``label_protocol`` setting ``wanted``: both
    for auto, the one set otherwise, plain text for a model without chat use."""
    return ("plain",) if not chat else (PROTOCOLS if wanted == AUTO else (wanted,))


def pick_protocol(evidence: dict, wanted: str, chat: bool) -> dict:
    """:func:`choose_protocol`'s pick with ``chosen_by``: ``auto`` resolved here, once; a
    protocol set by hand (``user``) or forced by a model without chat use (``model``)
    replaces it."""
    pick = choose_protocol(evidence)
    if wanted != AUTO or not chat:
        pick.update(protocol=protocols_to_try(wanted, chat)[0],
                    chosen_by="user" if chat else "model")
        if not chat:
            pick["reason"] = (f"{pick.get('reason', '')} The model is used without a chat "
                              "template (a base model, or chat turned off), so it labels "
                              "as plain text.").strip()
    else:
        pick["chosen_by"] = AUTO
    return pick


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


def choose_strategy(evidence: dict | None, protocol: str, table_labels: dict[str, list[str]],
                    labels: Sequence[str] = ()) -> dict:
    """The label strategy for ``label_strategy="auto"`` once every input is annotated.

    ``table_labels``: strategy -> labels over the annotated inputs, with ``target`` (the
    label each input was written for) and ``own`` when known; ``labels``: the task's.
    A self-label strategy is trusted when it answers more demos right leave-one-out than
    chance *and* (where there are enough inputs with a target) its labels follow the
    targets more often than chance (:func:`agreement`, one-sided p < 0.05); among those,
    the same order as :func:`choose_protocol` with degeneracy measured on all annotated
    inputs. When none is trusted the answer is :data:`OWN` -- the model's own answers,
    shares kept -- (``target`` when there are no label scores to rank), and the report
    says why.
    """
    if not evidence or protocol not in evidence.get("protocols", {}):
        return {"strategy": AUTO_WITHOUT_EVIDENCE, "beats_chance": None,
                "reason": "No labelling evidence is stored for this run; using the "
                          "majority vote of the samples (the paper's rule)."}
    targets = table_labels.get("target") or []
    cands = []
    for c in _candidates(evidence, [protocol]):
        labs = table_labels.get(c["strategy"], [])
        if labs:
            c["degenerate"] = top_share(labs) > DEGENERATE_SHARE
        c["agreement"] = agreement(labs, targets, labels) if labs and labels else None
        cands.append(c)
    best = max(cands, key=_rank_key)
    if beats_chance(evidence, protocol, best["strategy"]) is None:
        return {"strategy": best["strategy"], "beats_chance": None,
                "best_self": best["strategy"],
                "reason": f"With one demo there is nothing to leave out, so the labels cannot "
                          f"be checked against the demos; using {_SNAMES[best['strategy']]} "
                          f"(the least degenerate on the inputs). Add demos to get a check."}
    trusted = [c for c in cands if c["usable"] and beats_chance(evidence, protocol,
                                                                c["strategy"])
               and (c["agreement"] is None or c["agreement"]["p"] < AGREEMENT_ALPHA)]
    if trusted:
        pick = max(trusted, key=_rank_key)
        return {"strategy": pick["strategy"], "beats_chance": True,
                "best_self": pick["strategy"], "agreement": pick["agreement"],
                "reason": explain(evidence, protocol, pick["strategy"], pick["agreement"])}
    own_ok = any(table_labels.get(OWN) or [])
    return {"strategy": AUTO_FALLBACKS[0] if own_ok else AUTO_FALLBACKS[1], "beats_chance": False,
            "best_self": best["strategy"], "agreement": best["agreement"],
            "reason": _untrusted_reason(evidence, protocol, best, own_ok)}


def _untrusted_reason(evidence: dict, protocol: str, best: dict, own_ok: bool) -> str:
    d = (evidence["protocols"][protocol] or {}).get("demos", 0)
    if not best["usable"]:
        why = ("No way of self-labelling can be used here: the sampled answers name no label "
               "and there are no label scores")
    elif not beats_chance(evidence, protocol, best["strategy"]):
        why = (f"No way of self-labelling beat chance on the demos (best: "
               f"{best['loo_correct']} of {d} right, chance {evidence['chance'] * d:g} of {d})")
    else:
        a = best["agreement"] or {}
        why = (f"The model labelled {best['loo_correct']} of {d} demos right "
               f"{_NAMES[protocol]}, but on its own inputs its labels "
               f"({_SNAMES[best['strategy']]}) agree with the label each input was written "
               f"for {a.get('agree', 0):.0%} of the time, not clearly more than the "
               f"{a.get('chance', 0):.0%} that chance gives: they do not follow the inputs")
    if own_ok:
        return (why + f", so each input gets the model's own answer: the label it finds "
                f"likeliest {_NAMES[answer_of(evidence)]} (how it answers once tuned), "
                f"with the label shares as they come (no balancing). Training will teach "
                f"the answer format and keep the model's own choices, not the task. A "
                f"bigger model would help.")
    return (why + ", so each input keeps the label it was written for; training will teach "
            "the answer format, not the task. A bigger model would help.")


def table_labels(df: Any, task: TaskSpec) -> dict[str, list[str]]:
    """Strategy -> labels over the annotated rows of a candidates table, with ``target``
    (the label each row was written for) and ``own`` (the likeliest label in the answer
    protocol)."""
    rows = df[[s is not None and len(s) > 0 for s in df["samples"]]] \
        if "samples" in df.columns else df.iloc[0:0]
    return labels_by_strategy(rows, list(task.labels))


def resolve_filters(df: Any, task: TaskSpec, cfg: Any, stored: dict | None
                    ) -> tuple[Any, LabelChoice]:
    """(filter config with a concrete label strategy, the labelling choice for the report).

    ``stored`` is the run's ``labelling.json``. A strategy the user set is kept as it is;
    ``auto`` becomes :func:`choose_strategy`'s pick -- the one place it is resolved.
    """
    stored = stored or {}
    protocol = stored.get("protocol")
    base = LabelChoice(protocol=protocol, protocol_chosen_by=stored.get("chosen_by"),
                       protocol_reason=stored.get("reason"), requested=cfg.label_strategy)
    if not task.is_classification:
        return cfg, dataclasses.replace(base, beats_chance=True, reason=stored.get("reason"))
    ev = stored.get("evidence")
    answer = answer_of(ev) if ev else None
    if cfg.label_strategy != AUTO:
        bc = beats_chance(ev, protocol, cfg.label_strategy) if ev and protocol and \
            cfg.label_strategy in SELF_STRATEGIES else None
        return cfg, dataclasses.replace(
            base, strategy=cfg.label_strategy, strategy_chosen_by="user",
            answer_protocol=answer, beats_chance=bc,
            reason=f"Label strategy {cfg.label_strategy} was set by hand.")
    pick = choose_strategy(ev, protocol or "", table_labels(df, task), task.labels)
    return dataclasses.replace(cfg, label_strategy=pick["strategy"]), dataclasses.replace(
        base, strategy=pick["strategy"], strategy_chosen_by=AUTO, answer_protocol=answer,
        agreement=pick.get("agreement"), best_self=pick.get("best_self"),
        beats_chance=pick["beats_chance"], reason=pick["reason"])


_NAMES = {"chat": "in chat form", "plain": "as plain text"}
_SNAMES = {s: BY_NAME[s].words for s in SELF_STRATEGIES}


def explain(evidence: dict, protocol: str, strategy: str | None,
            agree: dict | None = None) -> str:
    """One sentence per protocol of what the model got right on the demos, then the pick
    (and, with ``agree``, how often its labels follow the asked-for labels)."""
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
    if agree:
        pick += (f"; on its own inputs these labels agree with the label each was written "
                 f"for {agree['agree']:.0%} of the time (chance {agree['chance']:.0%})")
    return f"{head}. Chosen: {pick}."
