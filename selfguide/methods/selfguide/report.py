"""SELF-GUIDE's dataset report: the funnel, labels per strategy, degenerate-label checks.

:func:`build_report` counts the funnel, the labels per strategy and their agreement with
the target label, and flags degenerate self-labels (:func:`diagnostics`; the Filter page
shows the same checks live); :func:`format_report` is its plain-text form for the CLI.

Pure: tables in, dicts and strings out; nothing is written here
(:mod:`selfguide.methods.selfguide.table` writes ``dataset/report.json``).
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import TYPE_CHECKING, Any

from selfguide.methods.checks import text_key
from selfguide.methods.selfguide.choice import AGREEMENT_ALPHA, LabelChoice
from selfguide.methods.selfguide.config import FilterConfig
from selfguide.methods.selfguide.filters import INPUT_FILTERS, ORDER, demo_template, funnel
from selfguide.methods.selfguide.relation import task_relation
from selfguide.methods.selfguide.strategies import (OWN, agreement, labels_by_strategy,
                                                    labels_from)
from selfguide.task.spec import TaskSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def _share_stats(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "median": None}
    return {"mean": round(statistics.fmean(values), 4),
            "median": round(statistics.median(values), 4)}


def strategy_table(df: pd.DataFrame, task: TaskSpec) -> dict[str, dict]:
    """Per label strategy: label distribution and agreement with the target label, over the
    annotated rows that passed the input filters."""
    if not task.is_classification or "label_vote" not in df.columns or not len(df):
        return {}
    passed = [f"f_{n}" for n in (*INPUT_FILTERS, "annotated") if f"f_{n}" in df.columns]
    inp = df[[all(x) for x in zip(*(df[c] for c in passed))]]
    labels = list(task.labels)
    by = labels_by_strategy(inp, labels)
    if not any(by[OWN]):
        del by[OWN]
    target = by["target"]
    out = {}
    for name, labs in by.items():
        valid = [(lab, t) for lab, t in zip(labs, target) if lab in labels]
        dist = Counter(lab for lab, _ in valid)
        agree = [lab == t for lab, t in valid if t in labels]
        test = agreement(labs, target, labels) if name != "target" else None
        out[name] = {"labels": {lab: dist.get(lab, 0) for lab in labels},
                     "labelled": len(valid),
                     "target_agreement": round(sum(agree) / len(agree), 4) if agree else None,
                     "agreement_chance": test and test["chance"],
                     "agreement_p": test and test["p"]}
    return out


def label_counts(df: pd.DataFrame, task: TaskSpec) -> dict[str, dict[str, int]]:
    """Per label of a classification task: the rows written for it (``generated``) and
    the kept rows that carry it (``kept``); ``{}`` for a generation task or no rows. THE
    label count of a filtered table (the report, the Filter page's chart)."""
    if not task.is_classification or not len(df):
        return {}
    kept = df[df["kept"]]
    out = {}
    for lab in task.labels:
        sub = df[df["target_label"] == lab] if "target_label" in df else df.iloc[0:0]
        out[lab] = {"generated": len(sub),
                    "kept": int((kept["label"] == lab).sum()) if len(kept) else 0}
    return out


def _vote_share_mean(df: pd.DataFrame) -> float | None:
    shares = df.loc[df["f_annotated"], "vote_share"].dropna().tolist() \
        if "vote_share" in df.columns and "f_annotated" in df.columns else []
    return statistics.fmean(shares) if shares else None


def _chosen_strategy(cfg: FilterConfig) -> str:
    """The strategy whose labels the dataset holds (``agree`` shows its source's)."""
    return labels_from(cfg.label_strategy, cfg.agree_source)


def _dominant(strategies: dict[str, dict], chosen: str, cfg: FilterConfig, add: Any) -> None:
    for name in dict.fromkeys((chosen, "vote")):
        st = strategies.get(name, {})
        n = st.get("labelled", 0)
        if not n:
            continue
        top_label, top = max(st["labels"].items(), key=lambda kv: kv[1])
        if name == chosen == "own" and top == n:
            continue  # single_label says it
        if top / n > cfg.dominant_label_share:
            level = "warning" if name != chosen or top < n or chosen == "own" else "error"
            if name == chosen == "own":
                tail = (" These are the model's own answers: it gives nearly every input "
                        "this label, so the tuned model will too (as the base does when "
                        "made to pick a label). A bigger model would help.")
            elif name == chosen:
                tail = (" Training on them teaches a constant answer; try the label "
                        "strategy calibrated or target, or a stronger model.")
            else:
                tail = " (Not the label strategy in use.)"
            add("dominant_label" if name == chosen else f"{name}_dominant_label", level,
                f"{name} labels are degenerate: {top} of {n} ({top / n:.0%}) are "
                f"{top_label!r}." + tail, round(top / n, 4))


def _at_chance(strategies: dict[str, dict], chosen: str, chance: float, add: Any) -> None:
    if chosen == "own":  # chosen because nothing followed the targets; the reason says so
        return
    for name in (("vote", "calibrated") if chosen == "target" else (chosen,)):
        s = strategies.get(name, {})
        agr, p = s.get("target_agreement"), s.get("agreement_p")
        if p is not None:  # tested against what labels with the same shares would agree
            if p < AGREEMENT_ALPHA:
                continue
            chance = s.get("agreement_chance", chance)
        elif agr is None or s.get("labelled", 0) < 10 or agr > chance + 0.1:
            continue
        add(f"{name}_target_agreement_chance", "warning",
            f"{name} labels agree with the label each input was written for only "
            f"{agr:.0%} of the time (chance = {chance:.0%}): the model cannot tell the "
            f"labels apart on its own inputs.", agr)


def diagnostics(df: pd.DataFrame, task: TaskSpec, cfg: FilterConfig,
                strategies: dict[str, dict]) -> list[dict]:
    """Warnings about degenerate self-labels and tiny datasets, with the numbers."""
    diags: list[dict] = []

    def add(code: str, level: str, message: str, value: Any) -> None:
        diags.append({"code": code, "level": level, "message": message, "value": value})

    kept = df[df["kept"]] if len(df) else df
    if len(kept) == 0:
        add("empty_dataset", "error", "No example survived the filters; nothing to train on.", 0)
    elif len(kept) < 20:
        n = len(kept)
        add("few_examples", "warning", f"Only {n} example{'' if n == 1 else 's'} "
            f"{'was' if n == 1 else 'were'} kept; expect little gain from training.", n)
    mean = _vote_share_mean(df)
    what = "answers" if not task.is_classification or not strategies else "labels"
    low = mean is not None and mean < cfg.low_vote_share
    if what == "answers":
        if low:
            add("low_vote_agreement", "warning", f"The sampled answers rarely agree (mean "
                f"vote share {mean:.2f} < {cfg.low_vote_share}).", round(mean, 4))
        return diags
    chosen = _chosen_strategy(cfg)
    if chosen == "own" and "own" not in strategies:
        add("own_unavailable", "error", "Label strategy own needs every label's score in the "
            "form the model answers in, and this run has none (synthesized before they were "
            "recorded, or without label scores). Choose another label strategy, or "
            "synthesize the run again.", None)
    _dominant(strategies, chosen, cfg, add)
    if low:
        add("low_vote_agreement", "warning", f"The sampled labels rarely agree (mean vote share "
            f"{mean:.2f} < {cfg.low_vote_share}).", round(mean, 4))
    _at_chance(strategies, chosen, 1.0 / len(task.labels), add)
    labels_kept = set(kept["label"]) - {""} if len(kept) and "label" in kept else set()
    if len(kept) and len(labels_kept) < 2 and chosen == "own":
        add("single_label", "warning", f"The dataset has a single label "
            f"({', '.join(sorted(labels_kept)) or 'none'}): the model's own answer to every "
            f"input. Training will teach the answer format and this one answer, the one the "
            f"base model picks when it must choose a label.", sorted(labels_kept))
    elif len(kept) and len(labels_kept) < 2:
        add("single_label", "error", f"The dataset has a single label "
            f"({', '.join(sorted(labels_kept)) or 'none'}); training would learn a constant "
            f"answer.", sorted(labels_kept))
    return diags


def labelling_diagnostics(choice: LabelChoice | None) -> list[dict]:
    """A warning when no way of self-labelling was trusted (beat chance on the demos and
    followed the asked-for labels on the model's own inputs)."""
    if choice is None or choice.beats_chance is not False:
        return []
    # the chooser's reason already names the evidence, the consequence and the remedy
    message = str(choice.reason or "") or (
        "The model's own labels did not show that they carry the task. Expect the tuned "
        "model to learn the answer format, not the task; a bigger model would help.")
    return [{"code": "labels_at_chance", "level": "warning", "message": message,
             "value": False}]


def build_report(df: pd.DataFrame, task: TaskSpec, cfg: FilterConfig, *,
                 n_train: int | None = None, n_val: int = 0,
                 labelling: LabelChoice | None = None) -> dict:
    """funnel, per-label counts, per-strategy labels/agreement, vote shares, diagnostics,
    and how the labels were made (``labelling``: protocol, strategy, why)."""
    kept = df[df["kept"]] if len(df) else df
    strategies = strategy_table(df, task)
    by_label = label_counts(df, task)
    shares = df.loc[df["f_annotated"], "vote_share"].dropna().tolist() \
        if len(df) and "vote_share" in df.columns else []
    diags = labelling_diagnostics(labelling) + diagnostics(df, task, cfg, strategies)
    return {
        "task": task.name, "task_type": task.task_type,
        "label_strategy": cfg.label_strategy if task.is_classification else None,
        "labelling": labelling.to_dict() if labelling is not None else None,
        "candidates": len(df), "kept": len(kept),
        "train": int(n_train if n_train is not None else len(kept)), "val": int(n_val),
        "funnel": funnel(df) if len(df) else [],
        "drop_reasons": {k: int(v) for k, v in Counter(df["drop_reason"]).items() if k}
        if len(df) else {},
        "labels": by_label,
        "strategies": strategies,
        "vote_share": _share_stats(shares),
        "structure": structure_summary(df, task, cfg),
        "answers": answer_summary(df, task),
        "origins": origin_counts(df),
        "diagnostics": diags,
        "degenerate": any(d["level"] == "error" or d["code"] == "dominant_label" for d in diags),
        "filter_order": list(ORDER),
    }


def answer_summary(df: pd.DataFrame, task: TaskSpec) -> dict | None:
    """Generation tasks: how the demos' outputs relate to their inputs and how many kept
    answers are their input unchanged (where the demos edit lightly, stage 2 counts the
    input itself among the candidates: issue 34). None for classification."""
    if task.is_classification:
        return None
    rel = task_relation(task)
    kept = df[df["kept"]] if len(df) else df
    same, _ = unchanged_answers(kept.get("input", []), kept.get("output", []))
    return {"relation": rel.describe(), "edits_lightly": rel.edits_lightly,
            "kept_unchanged": same, "kept": len(kept)}


def unchanged_answers(inputs: Any, outputs: Any) -> tuple[int, int]:
    """(answers equal to their input up to case and spacing, answers given): the rows with
    an empty output count in neither."""
    pairs = [(str(i), str(o)) for i, o in zip(inputs, outputs) if str(o).strip()]
    return sum(text_key(i) == text_key(o) for i, o in pairs), len(pairs)


def origin_counts(df: pd.DataFrame) -> dict | None:
    """Candidates and kept rows per origin (``given``: the user's own inputs, issue 36;
    ``generated``: stage 1's), with the rows dropped as held-out evaluation inputs; None
    when every row was generated."""
    if not len(df) or "origin" not in df.columns or not (df["origin"] == "given").any():
        return None
    origin = df["origin"].fillna("generated").astype(str)
    out = {}
    for o in ("given", "generated"):
        sub = df[origin == o]
        out[o] = {"candidates": len(sub), "kept": int(sub["kept"].sum()),
                  "held_out": int((sub["drop_reason"] == "held_out").sum())}
    return out


def structure_summary(df: pd.DataFrame, task: TaskSpec, cfg: FilterConfig) -> dict | None:
    """The demos' shared input structure and how many generated and kept inputs carry it
    (None when the demos share none)."""
    template = demo_template(task)
    if template.empty:
        return None
    scores = df["structure_score"].tolist() if "structure_score" in df.columns else []
    kept = df.loc[df["kept"], "structure_score"].tolist() if scores else []
    return {"template": template.describe(), "markers": list(template.markers),
            "min_structure": cfg.min_structure,
            "generated_carry": round(sum(s >= 1.0 for s in scores) / len(scores), 4)
            if scores else None,
            "kept_carry": round(sum(s >= 1.0 for s in kept) / len(kept), 4) if kept else None}


def answers_line(ans: dict) -> str:
    """One sentence on the demos' relation and the kept answers left unchanged."""
    line = f"Answers (demos): {ans['relation']}."
    if ans.get("edits_lightly"):
        line += (f" They edit lightly, so the input itself (no edit) was a candidate: "
                 f"{ans['kept_unchanged']} of {ans['kept']} kept answers leave it unchanged.")
    return line


def format_report(report: dict) -> str:
    """A plain-text funnel (generated -> after each filter -> dataset), labels, diagnostics."""
    lines = [f"Funnel ({report.get('task', '')}):"]
    lab = LabelChoice.from_dict(report.get("labelling"))
    if lab is not None and (lab.reason or lab.protocol_reason):
        lines.insert(0, f"Labelling: {lab.protocol or '-'} protocol"
                        + (f", {lab.strategy} labels" if lab.strategy else "")
                        + f". {lab.reason or lab.protocol_reason}")
    for step in report.get("funnel", []):
        if step["step"] == "generated" or step["dropped"]:
            drop = f"  (-{step['dropped']})" if step["dropped"] else ""
            lines.append(f"  {step['step']:<16} {step['remaining']:>6}{drop}")
    lines.append(f"  {'dataset':<16} {report.get('kept', 0):>6}  (train {report.get('train', 0)}"
                 f", val {report.get('val', 0)})")
    if (report.get("round") or {}).get("round"):
        lines.insert(0, f"Round {report['round']['round']}: {report['round'].get('source')}")
    if report.get("origins"):
        lines.append("By origin: " + "; ".join(
            f"{o} {c['candidates']} -> kept {c['kept']}"
            + (f" ({c['held_out']} held-out evaluation rows dropped)" if c["held_out"] else "")
            for o, c in report["origins"].items()))
    if report.get("labels"):
        lines.append(f"By label (strategy: {report.get('label_strategy')}):")
        for lab, c in report["labels"].items():
            lines.append(f"  {lab:<16} asked {c['generated']:>5}   kept {c['kept']:>5}")
    for t in report.get("topup") or []:
        asked = ", ".join(f"{k} ({v})" for k, v in t["asked_for"].items())
        after = ", ".join(f"{k} {t['after'].get(k, 0)}" for k in t["asked_for"])
        lines.append(f"Top-up round {t['round'] + 1}: too few examples of {asked}; its "
                     f"prompts asked only for those; now {after}")
    if report.get("strategies"):
        lines.append("Label strategies (annotated inputs; agreement with the asked-for label):")
        for name, s in report["strategies"].items():
            dist = ", ".join(f"{k} {v}" for k, v in s["labels"].items())
            agr = "-" if s["target_agreement"] is None else f"{s['target_agreement']:.0%}"
            if s.get("agreement_chance") is not None:
                agr += f" (chance {s['agreement_chance']:.0%})"
            lines.append(f"  {name:<11} {dist:<40} agreement {agr}")
    st = report.get("structure")
    if st and st.get("generated_carry") is not None:
        kept = "-" if st.get("kept_carry") is None else f"{st['kept_carry']:.0%}"
        lines.append(f"Input structure ({st['template']}): {st['generated_carry']:.0%} of the "
                     f"new inputs carry it, {kept} of the kept ones")
    ans = report.get("answers")
    if ans:
        lines.append(answers_line(ans))
    vs = report.get("vote_share") or {}
    if vs.get("mean") is not None:
        lines.append(f"Vote share: mean {vs['mean']:.2f}, median {vs['median']:.2f}")
    for d in report.get("diagnostics", []):
        lines.append(f"{d['level'].upper()}: {d['message']}")
    return "\n".join(lines)
