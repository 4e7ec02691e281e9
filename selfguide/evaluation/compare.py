"""Comparison tables: before/after of one run and side by side across runs.

Pure functions from metrics dicts (``eval/metrics.json``) to rows and plain-text tables,
plus a loader that reads those files for named runs. It does not compute metrics
(``selfguide.evaluation.metrics``) or run models.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfguide.evaluation.metrics import OTHER
from selfguide.runs import stale
from selfguide.runs.rundir import RunDir

ONE_ANSWER_SHARE = 0.9  # the tuned model giving one label to this share of inputs = collapse


def run_row(name: str, m: dict | None, train: dict | None = None) -> dict:
    """One table row for a run (values ``None`` where the run has no evaluation yet)."""
    m = m or {}
    d = m.get("difference") or {}
    return {"run": name, "task": m.get("task", ""), "metric": m.get("metric", ""),
            "n": m.get("n"), "before": m.get("before"), "after": m.get("after"),
            "delta": d.get("delta"), "ci_low": d.get("low"), "ci_high": d.get("high"),
            "changed": m.get("changed"),
            "train_rows": (train or {}).get("rows")}


def side_by_side(rows: Sequence[dict]) -> list[dict]:
    """Rows sorted by task then run (stable for printing)."""
    return sorted(rows, key=lambda r: (str(r.get("task")), str(r["run"])))


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def format_table(rows: Sequence[dict]) -> str:
    """A fixed-width text table (scores in points, i.e. x100)."""
    head = ["run", "task", "metric", "n", "before", "after", "delta", "95% CI", "changed",
            "train rows"]
    body = []
    for r in rows:
        ci = "-" if r.get("ci_low") is None else f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"
        body.append([str(r["run"]), str(r.get("task") or "-"), str(r.get("metric") or "-"),
                     "-" if r.get("n") is None else str(r["n"]), _pct(r.get("before")),
                     _pct(r.get("after")),
                     "-" if r.get("delta") is None else f"{100 * r['delta']:+.1f}", ci,
                     "-" if r.get("changed") is None else str(r["changed"]),
                     "-" if r.get("train_rows") is None else str(r["train_rows"])])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    lines += [f"{r['run']}: the evaluation is STALE: {r['stale']['changed']} (refresh: "
              f"{r['stale']['refresh']})" for r in rows if r.get("stale")]
    return "\n".join(lines)


def label_table(m: dict) -> str:
    """Per-label accuracy before/after of a classification evaluation ('' otherwise)."""
    after = m.get("per_label_after") or {}
    if not after:
        return ""
    before = m.get("per_label_before") or {}
    lines = ["label          before  after"]
    for lab, acc in after.items():
        lines.append(f"{lab[:14]:<14} {_pct(before.get(lab)):>6}  {_pct(acc):>5}")
    return "\n".join(lines)


# The metrics every evaluation reports (metrics.json keys), with how a person reads them.
METRIC_NAMES = {
    "exact_match": "exact match (strict)",
    "rouge_l": "ROUGE-L (words, stemmed)",
    "lenient_em": "lenient EM (paper: gold label in the answer)",
    "paper_rouge_l": "ROUGE-L (paper: character LCS F1)",
}


def metric_rows(m: dict) -> list[dict]:
    """One row per reported metric of an evaluation: before, after, delta and its 95% CI
    (``[]`` for a metrics.json written before these were reported)."""
    rows = []
    for key, label in METRIC_NAMES.items():
        block = m.get(key)
        if not isinstance(block, dict):
            continue
        d = block.get("difference") or {}
        rows.append({"metric": key, "name": label, "before": block.get("before"),
                     "after": block.get("after"), "delta": d.get("delta"),
                     "ci_low": d.get("low"), "ci_high": d.get("high"),
                     "task_metric": key == m.get("metric")})
    return rows


def format_metric_rows(m: dict) -> str:
    """A text table of :func:`metric_rows` (points, x100); '' when there are none."""
    rows = metric_rows(m)
    if not rows:
        return ""
    width = max(len(r["name"]) for r in rows) + 2
    lines = [f"{'metric':<{width}} before   after   delta   95% CI"]
    for r in rows:
        ci = ("-" if r["ci_low"] is None
              else f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}]")
        delta = "-" if r["delta"] is None else f"{100 * r['delta']:+.1f}"
        name = r["name"] + (" *" if r["task_metric"] else "")
        lines.append(f"{name:<{width}} {_pct(r['before']):>6}  {_pct(r['after']):>6}  "
                     f"{delta:>6}   {ci}")
    lines.append("* the task's metric")
    return "\n".join(lines)


def load_rows(names: Sequence[str]) -> list[dict]:
    """Rows for the named runs (``RunNotFound`` for a missing one)."""
    rows = []
    for name in names:
        run = RunDir.named(name, must_exist=True)
        row = run_row(name, run.read_metrics(), run.read_train_metrics())
        row["stale"] = stale.stale_stages(run).get("eval")
        rows.append(row)
    return side_by_side(rows)


def one_answer_warning(m: dict, train_labels: dict[str, int] | None = None) -> str | None:
    """A warning when the tuned model gives (nearly) every held-out input the same label
    while the base model did not: it learned a default answer, not the task.

    Computed from the predictions alone (no references), so it also holds for inputs
    without gold labels; ``train_labels`` (label -> training rows) says whether the training
    data asked for it.
    """
    counts = {k: v for k, v in (m.get("predicted_labels_after") or {}).items() if k != OTHER}
    n = m.get("n") or 0
    if not counts or n < 10:
        return None
    top, k = max(counts.items(), key=lambda kv: kv[1])
    before = (m.get("predicted_labels_before") or {}).get(top)
    if k < ONE_ANSWER_SHARE * n or (before is not None and before >= ONE_ANSWER_SHARE * n):
        return None
    text = f"The tuned model answers \u201c{top}\u201d to {k} of {n} held-out inputs"
    text += f" (the base model: {before} of {n})" if before is not None else ""
    text += ": a collapse to one answer."
    train_labels = train_labels or {}
    rows = sum(train_labels.values())
    mix = ", ".join(f"{c} \u201c{lab}\u201d" for lab, c in sorted(train_labels.items()))
    if rows and train_labels.get(top, 0) < ONE_ANSWER_SHARE * rows:
        text += (f" Its training rows were not like that ({mix}): it learned a default "
                 "answer, not the task, which is what labels that do not follow their "
                 "inputs teach.")
    elif rows:
        text += (f" So were its training rows ({mix}): the model gave that label to nearly "
                 "all of its own inputs, so training taught the answer format, not the task.")
    return text + (" Check the labels by hand on the Filter page, or use a bigger model, "
                   "before relying on this adapter.")


def share_rows(m: dict) -> list[dict]:
    """One row per answer of a label-free evaluation: how many inputs the base and the
    tuned model gave it, and the share (``[]`` without answer tables)."""
    a = (m.get("answers_after") or {}).get("counts") or {}
    b = (m.get("answers_before") or {}).get("counts") or {}
    n = m.get("n") or 0
    rows = []
    for lab in dict.fromkeys([*b, *a]):
        if not a.get(lab) and not b.get(lab) and lab == OTHER:
            continue
        rows.append({"answer": lab, "base": b.get(lab) if b else None, "tuned": a.get(lab, 0),
                     "base_share": (b.get(lab, 0) / n if n and b else None),
                     "tuned_share": a.get(lab, 0) / n if n else None})
    return rows


def unlabeled_lines(m: dict) -> list[str]:
    """The label-free comparison in sentences: inputs, agreement, entropy, the verdict."""
    n = m.get("n") or 0
    lines = [f"No held-out rows with expected outputs: base and tuned compared on {n} inputs "
             f"without labels ({m.get('source') or 'inputs without labels'})."]
    if m.get("agreement") is not None:
        lines.append(f"Agreement: the two models give the same answer to {m.get('agreed')} of "
                     f"{n} inputs ({100 * m['agreement']:.0f}%).")
    eb = (m.get("answers_before") or {}).get("entropy")
    ea = (m.get("answers_after") or {}).get("entropy")
    if ea is not None:
        lines.append("Spread of the answers (entropy, 0 bits = one answer for everything): "
                     + (f"base {eb:.2f} bits, " if eb is not None else "")
                     + f"tuned {ea:.2f} bits.")
    verdict = m.get("collapse")
    lines.append(verdict["message"] if verdict else
                 "No collapse: the tuned model does not answer one label to nearly every "
                 "input. Without expected outputs this says nothing about accuracy.")
    return lines


def format_unlabeled(name: str, m: dict) -> str:
    """The label-free comparison as text (``selfguide eval``/``run`` print it)."""
    rows = share_rows(m)
    width = max([len("answer"), *(len(str(r["answer"])[:30]) for r in rows)])
    first = unlabeled_lines(m)[0]
    out = [f"run {name}: {first[:1].lower()}{first[1:]}", "",
           f"{'answer':<{width}}  base  tuned"]
    for r in rows:
        base = "-" if r["base"] is None else str(r["base"])
        out.append(f"{str(r['answer'])[:30]:<{width}}  {base:>4}  {r['tuned']:>5}")
    out += ["", *unlabeled_lines(m)[1:]]
    return "\n".join(out)


def recommendation(m: dict | None) -> str | None:
    """What ``selfguide run`` recommends after an evaluation: the base model when the tuned
    one collapsed, else None (the numbers speak)."""
    verdict = (m or {}).get("collapse")
    if not verdict:
        return None
    return (f"The tuned model collapsed to \u201c{verdict.get('label')}\u201d "
            f"({verdict.get('count')} of {verdict.get('n')} inputs): use the base model, not "
            "this adapter. Check the labels on the Filter page (or balance them) and train "
            "again.")
