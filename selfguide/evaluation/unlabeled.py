"""Before/after without labels: which inputs, and what the two models' answers say.

What it does: finds inputs the user has without gold labels (the user's own inputs file, or
the run's held-out synthetic inputs that were never trained on: the dataset's validation
split, the rows training held back to validate, candidates the filters did not keep) and
summarises the base and the tuned model's answers on them: label shares, entropy,
agreement between the two, and the collapse verdict (:func:`collapse_verdict`: the tuned
model answers one label to >= 90% of inputs where the base's answers or the demos' labels
spread). The summary functions are pure.

What it does not do: run models or write files (``selfguide.evaluation.predict`` does), or
score against references (there are none).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfguide.errors import DatasetError, SelfGuideError
from selfguide.evaluation import metrics as M
from selfguide.runs.rundir import RunDir

COLLAPSE_SHARE = 0.9  # one label for this share of the inputs = collapse (issue 39)
COLLAPSE_MIN_N = 10   # fewer answers say nothing about a collapse
TOP_ANSWERS = 8       # generation tasks: the most frequent answers shown, the rest "(other)"
TXT_SUFFIXES = (".txt", ".text")

# ------------------------------------------------------------------------------ inputs


def read_inputs_file(path: str | Path) -> list[dict]:
    """``[{"id", "input"}]`` from a text file (one input per line), or a JSONL/CSV file with
    an ``input`` column (an ``output`` column, if any, is ignored here)."""
    from selfguide.task.formats import read_example_rows

    path = Path(path).expanduser()
    if path.suffix.lower() in TXT_SUFFIXES:
        if not path.is_file():
            raise DatasetError(f"Inputs file {path} not found (or not a regular file).")
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8",
                                                      errors="replace").splitlines()]
        rows = [{"id": f"input-{i}", "input": ln} for i, ln in enumerate(lines, 1) if ln]
    else:
        rows = [{"id": r["id"], "input": r["input"]} for r in read_example_rows(
            path, what="Inputs file", need_output=False, id_prefix="input-")]
    if not rows:
        raise DatasetError(f"Inputs file {path} has no inputs.",
                           hint="Write one input per line (.txt), or give a JSONL/CSV file "
                                "with an 'input' column.")
    return rows


def _trained_inputs(run: RunDir) -> tuple[set[str], list[dict]]:
    """(inputs training learned from, rows it validated on), split as training split them
    (:func:`selfguide.training.trainer.validation_split` with the run's saved settings)."""
    records = run.read_records("train") if run.has_dataset() else []
    val = run.read_records("val") if run.has_dataset() else []
    saved = (run.read_train_config() or {}).get("train")
    if isinstance(saved, dict) and records:
        from selfguide.settings.fields import from_dict
        from selfguide.settings.training import TrainConfig
        from selfguide.training.trainer import validation_split

        try:
            cfg = from_dict(TrainConfig, saved)
        except Exception:  # noqa: BLE001 - settings of another version: no split known
            cfg = None
        if cfg is not None:
            records, val, _ = validation_split(records, val, cfg)
    return {_key(r.get("input")) for r in records}, val


def _key(text: Any) -> str:
    return " ".join(str(text or "").split()).casefold()


def held_out_inputs(run: RunDir, task: Any) -> tuple[list[dict], str]:
    """The run's synthetic inputs that were never trained on, and where they come from.

    Validation rows first (the dataset's, or those training held back), then the candidates
    the filters did not keep. Inputs that training saw, the demos' inputs and duplicates are
    left out; so are empty inputs.
    """
    trained, val = _trained_inputs(run)
    seen = trained | {_key(d.input) for d in task.demos}
    rows: list[dict] = []
    counts = {"validation": 0, "not kept": 0}

    def add(rid: Any, text: Any, kind: str) -> None:
        key = _key(text)
        if key and key not in seen:
            seen.add(key)
            rows.append({"id": str(rid), "input": str(text).strip()})
            counts[kind] += 1

    for i, r in enumerate(val):
        add(r.get("id") or f"val-{i}", r.get("input"), "validation")
    if run.candidates_file.is_file():
        from selfguide.methods import candidates

        try:
            df = candidates.read(run)
        except SelfGuideError:  # an unreadable table: no candidates to add
            df = None
        if df is not None and {"id", "input", "kept"} <= set(df.columns):
            for rid, text in zip(df["id"][~df["kept"].astype(bool)],
                                 df["input"][~df["kept"].astype(bool)]):
                add(rid, text, "not kept")
    parts = [f"{n} {k}" for k, n in counts.items() if n]
    return rows, ("held-out synthetic inputs never trained on: " + ", ".join(parts)
                  if parts else "")


def inputs_for(run: RunDir, task: Any, inputs_file: str | Path | None) -> tuple[list[dict], str]:
    """The inputs of a label-free comparison: ``inputs_file``, else the user's inputs saved
    in the run (``RunDir.unlabeled_file``), else :func:`held_out_inputs`."""
    if inputs_file:
        return read_inputs_file(inputs_file), f"your inputs ({Path(inputs_file).name})"
    rows = [{"id": r.get("id") or f"input-{i}", "input": str(r.get("input") or "")}
            for i, r in enumerate(run.read_unlabeled_inputs(), 1)]
    rows = [r for r in rows if r["input"].strip()]
    if rows:
        return rows, "your own inputs (saved on the Compare page)"
    rows, source = held_out_inputs(run, task)
    if not rows:
        raise DatasetError(
            f"Run {run.name!r} has no held-out examples and no inputs to compare on.",
            hint="Add held-out rows (input and expected output) on the Task page, or give "
                 "inputs without labels on the Compare page (or 'selfguide eval --unlabeled "
                 "FILE', one input per line).")
    return rows, source


def save_own_inputs(run: RunDir, texts: Sequence[str]) -> int:
    """Write the user's unlabeled inputs into the run (one row per non-empty text); an empty
    list removes them. Returns how many were saved."""
    rows = [{"id": f"input-{i}", "input": t.strip()} for i, t in
            enumerate((t for t in texts if str(t).strip()), 1)]
    run.write_unlabeled_inputs(rows)
    return len(rows)


def own_inputs(run: RunDir) -> list[str]:
    """The user's saved unlabeled inputs (``[]`` when none)."""
    return [str(r.get("input") or "") for r in run.read_unlabeled_inputs()]


# ------------------------------------------------------------------------------ answers (pure)

def answer_counts(answers: Sequence[str], labels: Sequence[str]) -> dict[str, int]:
    """Label -> answers (classification, unknown answers as ``(other)``), or the most
    frequent normalised answers (generation, the rest as ``(other)``)."""
    if labels:
        return M.label_counts(answers, labels)
    c = Counter(M.normalize(a) for a in answers)
    top = dict(c.most_common(TOP_ANSWERS))
    rest = sum(c.values()) - sum(top.values())
    return {**top, **({M.OTHER: rest} if rest else {})}


def entropy(counts: dict[str, int]) -> float:
    """Shannon entropy (bits) of a count table: 0 = one answer for everything."""
    n = sum(counts.values())
    return -sum(c / n * math.log2(c / n) for c in counts.values() if c) + 0.0 if n else 0.0


def answer_block(answers: Sequence[str], labels: Sequence[str]) -> dict:
    """Counts, shares, entropy and the top answer of one model's answers."""
    counts = answer_counts(answers, labels)
    n = len(answers)
    named = {k: v for k, v in counts.items() if k != M.OTHER} or counts
    top, k = max(named.items(), key=lambda kv: kv[1]) if named else ("", 0)
    return {"counts": counts, "shares": {lab: (c / n if n else 0.0) for lab, c in counts.items()},
            "entropy": round(entropy(counts), 4), "top": top, "top_count": k,
            "top_share": k / n if n else 0.0}


def _spread(counts: dict[str, int] | None) -> bool:
    """Whether a count table is spread: >= 2 answers and none for >= 90% of it."""
    counts = {k: v for k, v in (counts or {}).items() if k != M.OTHER and v}
    n = sum(counts.values())
    return len(counts) >= 2 and max(counts.values()) < COLLAPSE_SHARE * n


def collapse_verdict(after: dict[str, int], before: dict[str, int] | None = None,
                     demos: dict[str, int] | None = None) -> dict | None:
    """The collapse verdict of issue 39, or None when there is none.

    A collapse: the tuned model gives one answer (``after``: answer -> count) to >= 90% of
    at least :data:`COLLAPSE_MIN_N` inputs while the base model's answers on the same
    inputs (``before``) or the demos' labels (``demos``) spread over several answers.
    """
    n = sum(after.values())
    named = {k: v for k, v in after.items() if k != M.OTHER}
    if n < COLLAPSE_MIN_N or not named:
        return None
    top, k = max(named.items(), key=lambda kv: kv[1])
    spread_by = [w for w, c in (("base", before), ("demos", demos)) if _spread(c)]
    if k < COLLAPSE_SHARE * n or not spread_by:
        return None
    base_k = (before or {}).get(top)
    text = (f"Collapse: the tuned model answers \u201c{top}\u201d to {k} of {n} inputs "
            f"({100 * k / n:.0f}%)")
    if base_k is not None:
        text += f", the base model to {base_k} of {sum(before.values())}"
    if demos:
        text += ", the demos' labels spread over " + ", ".join(
            f"{c} \u201c{lab}\u201d" for lab, c in sorted(demos.items()))
    text += (". It learned one default answer, not the task: use the base model, or check "
             "the labels on the Filter page and train again.")
    return {"collapsed": True, "label": top, "count": k, "n": n, "share": k / n,
            "base_count": base_k, "spread_by": spread_by, "demo_labels": dict(demos or {}),
            "message": text}


def demo_label_counts(task: Any) -> dict[str, int] | None:
    """Label -> demos (classification tasks), None otherwise."""
    if not (task.is_classification and task.labels):
        return None
    c = Counter(M.to_label(d.output, task.labels) for d in task.demos)
    return {k: v for k, v in c.items() if k != M.OTHER}


def summarize(task: Any, before: Sequence[str] | None, after: Sequence[str]) -> dict:
    """The label-free summary: per-model answer blocks, agreement and the verdict (pure)."""
    labels = tuple(task.labels) if task.is_classification else ()
    a_block = answer_block(after, labels)
    out: dict = {"mode": "unlabeled", "metric": task.metric, "n": len(after),
                 "before": None, "after": None, "answers_after": a_block,
                 "predicted_labels_after": a_block["counts"]}
    b_counts = None
    if before is not None:
        b_block = answer_block(before, labels)
        same = [_same(x, y, labels) for x, y in zip(before, after)]
        out.update(answers_before=b_block, predicted_labels_before=b_block["counts"],
                   agreed=sum(same), changed=len(same) - sum(same),
                   agreement=sum(same) / len(same) if same else None)
        b_counts = b_block["counts"]
    out["collapse"] = collapse_verdict(a_block["counts"], b_counts, demo_label_counts(task))
    return out


def _same(x: str, y: str, labels: Sequence[str]) -> bool:
    if labels:
        return M.to_label(x, labels) == M.to_label(y, labels)
    return M.normalize(x) == M.normalize(y)


def rows(examples: Sequence[dict], before: Sequence[str] | None, after: Sequence[str],
         raw_before: Sequence[str] | None, raw_after: Sequence[str],
         labels: Sequence[str]) -> list[dict]:
    """Per-input prediction rows (no reference, no score)."""
    out = []
    for i, ex in enumerate(examples):
        row = {"id": ex["id"], "input": ex["input"], "after": after[i],
               "raw_after": raw_after[i]}
        if labels:
            row["label_after"] = M.to_label(after[i], labels)
        if before is not None:
            row.update(before=before[i], raw_before=raw_before[i],
                       changed=not _same(before[i], after[i], labels))
            if labels:
                row["label_before"] = M.to_label(before[i], labels)
        out.append(row)
    return out
