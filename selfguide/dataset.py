"""The training dataset built from the filtered candidates table, its report and exports.

:func:`build_records` turns kept rows into records ``{"id", "prompt", "completion",
"input", "output", "label"}`` (``label`` only for classification) whose ``prompt`` is
exactly :func:`selfguide.prompts.task_prompt` -- the prompt evaluation uses -- and whose
``completion`` is the label (classification) or the voted answer, with no leading space
(training appends it to ``render_prompt(...)`` and adds EOS). :func:`build_report` counts the
funnel, the labels per strategy and their agreement with the target label, and flags
degenerate self-labels. :func:`write_dataset` writes ``dataset/{train,val}.jsonl`` and
``dataset/report.json`` atomically; :func:`load_records` reads them back;
:func:`export` writes jsonl / alpaca / hf-dataset copies and the chat formats (TRL
prompt-completion, ``messages``, ShareGPT), each with a dataset card.

It does not generate, filter or train.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfguide import store
from selfguide.configs.synthesis import FilterConfig
from selfguide.errors import DatasetError
from selfguide.filters import ORDER, calibrated_labels, funnel, rank_labels
from selfguide.prompts import task_prompt
from selfguide.task import TaskSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SPLITS = ("train", "val")


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


# Chat-format exports: one JSON line per record, the prompt as the single user turn (the
# run trains on exactly that turn, rendered with the model's chat template).
CHAT_EXPORTS = {
    "prompt-completion": lambda r: {"prompt": [_user(r["prompt"])],
                                    "completion": [_assistant(r["completion"])]},
    "messages": lambda r: {"messages": [_user(r["prompt"]), _assistant(r["completion"])]},
    "sharegpt": lambda r: {"conversations": [{"from": "human", "value": r["prompt"]},
                                             {"from": "gpt", "value": r["completion"]}]},
}
EXPORT_FORMATS = ("jsonl", "alpaca", "hf-dataset", *CHAT_EXPORTS)
EXPORT_NAMES = {"jsonl": "train.jsonl", "alpaca": "alpaca.json", "hf-dataset": "hf-dataset",
                "prompt-completion": "prompt_completion.jsonl", "messages": "messages.jsonl",
                "sharegpt": "sharegpt.jsonl"}


def build_records(df: pd.DataFrame, task: TaskSpec, *, val_fraction: float = 0.0,
                  seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, val) records of the kept rows, in table order; val is a seeded sample."""
    kept = df[df["kept"]] if len(df) else df
    recs = []
    for row in kept.itertuples(index=False):
        label = getattr(row, "label", "") or ""
        output = label if task.is_classification else str(row.output)
        rec = {"id": row.id, "prompt": task_prompt(task, row.input), "completion": output,
               "input": row.input, "output": output}
        if task.is_classification:
            rec["label"] = label
        recs.append(rec)
    n_val = round(len(recs) * val_fraction)
    if n_val == 0:
        return recs, []
    val_ids = set(random.Random(seed).sample([r["id"] for r in recs], n_val))
    return ([r for r in recs if r["id"] not in val_ids], [r for r in recs if r["id"] in val_ids])


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
    inp = df[[all(x) for x in zip(*(df[f"f_{n}"] for n in ("empty", "noise", "length",
                                                            "duplicate", "near_duplicate",
                                                            "annotated")))]]
    labels = list(task.labels)
    target = inp["target_label"].fillna("").astype(str).tolist()
    scores = inp["label_scores"].tolist() if "label_scores" in inp else [None] * len(inp)
    cal, _ = calibrated_labels(scores, labels)
    by = {"vote": inp["label_vote"].fillna("").astype(str).tolist(),
          "rank": rank_labels(scores, labels), "calibrated": cal, "target": target}
    out = {}
    for name, labs in by.items():
        valid = [(lab, t) for lab, t in zip(labs, target) if lab in labels]
        dist = Counter(lab for lab, _ in valid)
        agree = [lab == t for lab, t in valid if t in labels]
        out[name] = {"labels": {lab: dist.get(lab, 0) for lab in labels},
                     "labelled": len(valid),
                     "target_agreement": round(sum(agree) / len(agree), 4) if agree else None}
    return out


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
        add("few_examples", "warning", f"Only {len(kept)} examples were kept; expect little "
            f"gain from training.", len(kept))
    if not task.is_classification or not strategies:
        if "vote_share" in df.columns and "f_annotated" in df.columns:
            shares = df.loc[df["f_annotated"], "vote_share"].dropna().tolist()
            if shares and statistics.fmean(shares) < cfg.low_vote_share:
                add("low_vote_agreement", "warning", f"The sampled answers rarely agree (mean "
                    f"vote share {statistics.fmean(shares):.2f} < {cfg.low_vote_share}).",
                    round(statistics.fmean(shares), 4))
        return diags
    chance = 1.0 / len(task.labels)
    if cfg.label_strategy in ("target", "rank", "vote"):
        chosen = cfg.label_strategy
    elif cfg.label_strategy == "calibrated" or (cfg.label_strategy == "agree"
                                                and cfg.agree_source == "calibrated"):
        chosen = "calibrated"
    else:
        chosen = "vote"
    for name in dict.fromkeys((chosen, "vote")):
        st = strategies.get(name, {})
        n = st.get("labelled", 0)
        if not n:
            continue
        top_label, top = max(st["labels"].items(), key=lambda kv: kv[1])
        if top / n > cfg.dominant_label_share:
            level = "warning" if name != chosen or top < n else "error"
            add("dominant_label" if name == chosen else f"{name}_dominant_label", level,
                f"{name} labels are degenerate: {top} of {n} ({top / n:.0%}) are "
                f"{top_label!r}." + (" Training on them teaches a constant answer; try "
                                     "--label-strategy calibrated or target, or a stronger "
                                     "model." if name == chosen else
                                     " (Not the label strategy in use.)"),
                round(top / n, 4))
    shares = df.loc[df["f_annotated"], "vote_share"].dropna().tolist() \
        if "vote_share" in df.columns else []
    if shares and statistics.fmean(shares) < cfg.low_vote_share:
        add("low_vote_agreement", "warning", f"The sampled labels rarely agree (mean vote share "
            f"{statistics.fmean(shares):.2f} < {cfg.low_vote_share}).",
            round(statistics.fmean(shares), 4))
    for name in (("vote", "calibrated") if chosen == "target" else (chosen,)):
        s = strategies.get(name, {})
        agr = s.get("target_agreement")
        if agr is not None and s.get("labelled", 0) >= 10 and agr <= chance + 0.1:
            add(f"{name}_target_agreement_chance", "warning",
                f"{name} labels agree with the label each input was written for only "
                f"{agr:.0%} of the time (chance = {chance:.0%}): the model cannot tell the "
                f"labels apart on its own inputs.", agr)
    labels_kept = set(kept["label"]) - {""} if len(kept) and "label" in kept else set()
    if len(kept) and len(labels_kept) < 2:
        add("single_label", "error", f"The dataset has a single label "
            f"({', '.join(sorted(labels_kept)) or 'none'}); training would learn a constant "
            f"answer.", sorted(labels_kept))
    return diags


def labelling_diagnostics(choice: dict | None) -> list[dict]:
    """A warning when no way of self-labelling beat chance on the demos."""
    if not choice or choice.get("beats_chance") is not False:
        return []
    return [{"code": "labels_at_chance", "level": "warning",
             "message": "The model's own labels do not beat chance on the demos "
                        "(leave-one-out): " + str(choice.get("reason") or "") +
                        " Expect the tuned model to learn the answer format, not the task; "
                        "a bigger model would help.", "value": False}]


def build_report(df: pd.DataFrame, task: TaskSpec, cfg: FilterConfig, *,
                 n_train: int | None = None, n_val: int = 0,
                 labelling: dict | None = None) -> dict:
    """funnel, per-label counts, per-strategy labels/agreement, vote shares, diagnostics,
    and how the labels were made (``labelling``: protocol, strategy, why)."""
    kept = df[df["kept"]] if len(df) else df
    strategies = strategy_table(df, task)
    by_label = {}
    if task.is_classification and len(df):
        for lab in task.labels:
            sub = df[df["target_label"] == lab] if "target_label" in df else df.iloc[0:0]
            by_label[lab] = {"generated": len(sub),
                             "kept": int((kept["label"] == lab).sum()) if len(kept) else 0}
    shares = df.loc[df["f_annotated"], "vote_share"].dropna().tolist() \
        if len(df) and "vote_share" in df.columns else []
    diags = labelling_diagnostics(labelling) + diagnostics(df, task, cfg, strategies)
    return {
        "task": task.name, "task_type": task.task_type,
        "label_strategy": cfg.label_strategy if task.is_classification else None,
        "labelling": labelling,
        "candidates": len(df), "kept": len(kept),
        "train": int(n_train if n_train is not None else len(kept)), "val": int(n_val),
        "funnel": funnel(df) if len(df) else [],
        "drop_reasons": {k: int(v) for k, v in Counter(df["drop_reason"]).items() if k}
        if len(df) else {},
        "labels": by_label,
        "strategies": strategies,
        "vote_share": _share_stats(shares),
        "diagnostics": diags,
        "degenerate": any(d["level"] == "error" or d["code"] == "dominant_label" for d in diags),
        "filter_order": list(ORDER),
    }


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def write_dataset(run_dir: str | Path, df: pd.DataFrame, task: TaskSpec,
                  cfg: FilterConfig, *, labelling: dict | None = None) -> dict:
    """Write dataset/train.jsonl, dataset/val.jsonl and dataset/report.json; return the report."""
    d = Path(run_dir) / "dataset"
    train, val = build_records(df, task, val_fraction=cfg.val_fraction, seed=cfg.seed)
    report = build_report(df, task, cfg, n_train=len(train), n_val=len(val),
                          labelling=labelling)
    store.atomic_write_text(d / "train.jsonl", _jsonl(train))
    store.atomic_write_text(d / "val.jsonl", _jsonl(val))
    store.atomic_write_json(d / "report.json", report)
    return report


def load_records(run_dir: str | Path, split: str = "train") -> list[dict]:
    """The records of ``dataset/<split>.jsonl``; ``DatasetError`` if the dataset is missing."""
    if split not in SPLITS:
        raise DatasetError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    path = Path(run_dir) / "dataset" / f"{split}.jsonl"
    if not path.is_file():
        if split == "val":
            return []
        raise DatasetError(f"No dataset at {path}.",
                           hint="Run 'selfguide synthesize TASK --run NAME' (or 'selfguide "
                                "filter --run NAME') first.")
    return store.read_jsonl(path)


def load_report(run_dir: str | Path) -> dict | None:
    return store.read_json(Path(run_dir) / "dataset" / "report.json", default=None)


def export(run_dir: str | Path, fmt: str, dest: str | Path | None = None, *,
           force: bool = False, card: bool = True) -> Path:
    """Write the train split as ``jsonl`` (prompt/completion records), ``alpaca``
    (instruction/input/output JSON list), ``hf-dataset`` (``datasets.save_to_disk``) or a
    chat format (:data:`CHAT_EXPORTS`: TRL prompt-completion, ``messages``, ShareGPT), and
    with ``card`` a dataset card (``README.md``, see :func:`write_export_card`).

    An explicit ``dest`` follows :mod:`selfguide.outpaths`: a missing path, or an existing
    regular file with ``force``; a new or empty directory for ``hf-dataset``. Links,
    devices, FIFOs and non-empty directories are refused, and checked before any work.
    """
    from selfguide import outpaths

    if fmt not in EXPORT_FORMATS:
        raise DatasetError(f"Unknown export format {fmt!r}; use one of "
                           f"{', '.join(EXPORT_FORMATS)}.")
    if dest is not None:
        dest = (outpaths.check_output_dir(dest, force=force) if fmt == "hf-dataset"
                else outpaths.check_output_file(dest, force=force))
    run_dir = Path(run_dir)
    recs = load_records(run_dir, "train")
    out_dir = run_dir / "export"
    if fmt == "jsonl":
        path = Path(dest) if dest else out_dir / "train.jsonl"
        _write_export(path, _jsonl(recs), own=dest is None, force=force)
    elif fmt in CHAT_EXPORTS:
        path = Path(dest) if dest else out_dir / EXPORT_NAMES[fmt]
        _write_export(path, _jsonl([CHAT_EXPORTS[fmt](r) for r in recs]), own=dest is None,
                      force=force)
    elif fmt == "alpaca":
        path = Path(dest) if dest else out_dir / "alpaca.json"
        task = TaskSpec.from_dict(store.read_json(run_dir / "task.json"))
        rows = [{"instruction": task.instruction, "input": r["input"], "output": r["completion"]}
                for r in recs]
        _write_export(path, json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n",
                      own=dest is None, force=force)
    else:
        from datasets import Dataset

        path = Path(dest) if dest else out_dir / "hf-dataset"
        cols = ("id", "prompt", "completion", "input", "output")
        ds = Dataset.from_dict({c: [r[c] for r in recs] for c in cols})
        if dest is None:
            ds.save_to_disk(str(path))
        else:
            tmp = outpaths.staging_dir(path)
            try:
                ds.save_to_disk(str(tmp))
            except BaseException:
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
                raise
            outpaths.publish_dir(tmp, path)
    if card:
        write_export_card(run_dir, fmt, path)
    return path


def write_export_card(run_dir: str | Path, fmt: str, path: str | Path) -> Path | None:
    """The dataset card of an export: ``README.md`` inside an ``hf-dataset`` folder, beside
    a file otherwise, but only in a folder that holds nothing else (the run's export folder,
    or a dedicated one); None when skipped or when a README selfguide did not write is
    already there."""
    from selfguide import cards

    path = Path(path)
    folder = path if fmt == "hf-dataset" else path.parent
    if fmt == "hf-dataset":
        files = sorted(p.name for p in folder.iterdir() if p.name != "README.md")
    else:
        files = [path.name]
        others = {p.name for p in folder.iterdir()} - {path.name, "README.md"}
        if folder != Path(run_dir) / "export" and others:
            return None  # a folder of the user's own: no README dropped into it
    text = cards.dataset_card(cards.run_facts(run_dir), fmt=fmt, files=files)
    return cards.write_card(folder, text)


def _write_export(path: Path, text: str, *, own: bool, force: bool) -> None:
    """Inside the run (``own``): the run's atomic writer; elsewhere: the safe output writer."""
    from selfguide import outpaths

    if own:
        store.atomic_write_text(path, text)
    else:
        outpaths.write_output_text(path, text, force=force)


def format_report(report: dict) -> str:
    """A plain-text funnel (generated -> after each filter -> dataset), labels, diagnostics."""
    lines = [f"Funnel ({report.get('task', '')}):"]
    lab = report.get("labelling") or {}
    if lab.get("reason") or lab.get("protocol_reason"):
        lines.insert(0, f"Labelling: {lab.get('protocol') or '-'} protocol"
                        + (f", {lab['strategy']} labels" if lab.get("strategy") else "")
                        + f". {lab.get('reason') or lab.get('protocol_reason')}")
    for step in report.get("funnel", []):
        if step["step"] == "generated" or step["dropped"]:
            drop = f"  (-{step['dropped']})" if step["dropped"] else ""
            lines.append(f"  {step['step']:<16} {step['remaining']:>6}{drop}")
    lines.append(f"  {'dataset':<16} {report.get('kept', 0):>6}  (train {report.get('train', 0)}"
                 f", val {report.get('val', 0)})")
    if report.get("labels"):
        lines.append(f"By label (strategy: {report.get('label_strategy')}):")
        for lab, c in report["labels"].items():
            lines.append(f"  {lab:<16} asked {c['generated']:>5}   kept {c['kept']:>5}")
    if report.get("strategies"):
        lines.append("Label strategies (annotated inputs; agreement with the asked-for label):")
        for name, s in report["strategies"].items():
            dist = ", ".join(f"{k} {v}" for k, v in s["labels"].items())
            agr = "-" if s["target_agreement"] is None else f"{s['target_agreement']:.0%}"
            lines.append(f"  {name:<11} {dist:<40} agreement {agr}")
    vs = report.get("vote_share") or {}
    if vs.get("mean") is not None:
        lines.append(f"Vote share: mean {vs['mean']:.2f}, median {vs['median']:.2f}")
    for d in report.get("diagnostics", []):
        lines.append(f"{d['level'].upper()}: {d['message']}")
    return "\n".join(lines)
