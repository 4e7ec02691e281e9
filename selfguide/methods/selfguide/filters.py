"""Filters over the candidates table: each a named pure function returning a keep-mask.

Filters annotate, they never delete: :func:`apply` returns a copy of the table with one bool
column ``f_<name>`` per filter (True = passes), ``label`` (the label chosen by the
configured strategy), ``drop_reason`` (the first failing filter in :data:`ORDER`, "" if
kept) and ``kept``. Thresholds come from
:class:`~selfguide.methods.selfguide.config.FilterConfig`, so any setting can be
re-applied without generating again. Near-duplicate ROUGE-L scores are the only expensive
part; they are computed once (:func:`near_duplicate_scores`) and cached in the
``nd_score``/``nd_nearest`` columns.

Input filters (SELF-GUIDE, Zhao et al. 2024, sec. 3.2 "rule-based filters"):
``empty``, ``held_out`` (an input equal or near, ROUGE-L >= the near-duplicate threshold,
to a held-out evaluation row of the task would leak it into training), ``noise``,
``structure`` (the share of the structure every demo input shares,
:mod:`selfguide.task.structure`; inputs without the demos' fields cannot be labelled
meaningfully), ``length``, ``duplicate``, ``near_duplicate`` (Self-Instruct, Wang et al.
2022: ROUGE-L >= 0.7 to an existing instruction is dropped). The user's own inputs
(``origin`` = ``given``, issue 36) are real data, not model text: noise, structure, length
and near-duplicate (:data:`GENERATED_TEXT_FILTERS`) pass them unless ``filter_given``;
empty, held-out, duplicate and every output filter apply to them as to generated rows.
Output filters: ``annotated``, ``output_empty``, ``output_noise``, ``output_length``,
``repetition`` (an answer looping on a phrase), ``copy`` (not when the demos copy),
``relation`` (generation: output/input length ratio and ROUGE-L inside the demos'
envelope, :mod:`~selfguide.methods.selfguide.relation`), ``consistency`` (classification:
SELF-GUIDE self-consistency, min_frequency), ``agreement`` (generation: the consensus
answer's mean ROUGE-L to the other samples, min_agreement), ``label``
(classification: maps to exactly one label under the chosen strategy), ``balance``
(downsample every label to the rarest one; not under the ``own`` strategy, whose label
shares are the model's own answers) and ``manual`` (overrides.json).

This module does not call models and does not write files.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from selfguide.evaluation.metrics import repetitive
from selfguide.methods.candidates import funnel as _funnel
from selfguide.methods.checks import not_empty, text_key, word_count
from selfguide.methods.selfguide.config import FilterConfig
from selfguide.methods.selfguide.relation import demo_relation, in_relation
from selfguide.methods.selfguide import strategies
from selfguide.methods.selfguide.strategies import calibrated_labels, rank_labels
from selfguide.task.spec import TaskSpec
from selfguide.task.structure import InputTemplate, infer_template

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

INPUT_FILTERS = ("empty", "held_out", "noise", "structure", "length", "duplicate",
                 "near_duplicate")
# Filters meant for text the model wrote; the user's own inputs (origin "given") pass them
# unless FilterConfig.filter_given (issue 36).
GENERATED_TEXT_FILTERS = ("noise", "structure", "length", "near_duplicate")
OUTPUT_FILTERS = ("annotated", "output_empty", "output_noise", "output_length", "repetition",
                  "copy", "relation", "consistency", "agreement", "label", "balance", "manual")
ORDER = INPUT_FILTERS + OUTPUT_FILTERS


# --------------------------------------------------------------------------- text filters

def _noise_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    parts = []
    for t in terms:
        t = t.casefold()
        pre = r"(?<!\w)" if t[:1].isalnum() else ""
        post = r"(?!\w)" if t[-1:].isalnum() else ""
        parts.append(pre + re.escape(t) + post)
    return re.compile("|".join(parts)) if parts else None


def no_noise(texts: Sequence[str], terms: Sequence[str]) -> list[bool]:
    """Drop texts containing a noise term: leaked prompt markers (``Input:``) or chatty
    openers ("Sure, here is") -- SELF-GUIDE's noise filter. Terms match case-insensitively
    as whole words."""
    pat = _noise_pattern(terms)
    if pat is None:
        return [True] * len(texts)
    quick = re.compile("|".join(re.escape(t.casefold()) for t in terms))
    cache: dict[str, bool] = {}
    out = []
    for t in texts:
        ok = cache.get(t)
        if ok is None:
            cf = t.casefold()
            # cheap substring test first; the boundary-aware regex only on candidates
            ok = quick.search(cf) is None or pat.search(cf) is None
            cache[t] = ok
        out.append(ok)
    return out


def length_window(examples: Sequence[str], k: float, min_words: int = 0,
                  max_words: int = 0) -> tuple[float, float]:
    """``(lo, hi)`` word bounds: mean +/- k*sd of the examples' lengths (sd floored at a
    quarter of the mean and 1 word, since 3 demos give a noisy sd); absolute bounds win."""
    lens = [word_count(e) for e in examples if e.strip()]
    if lens:
        mean = statistics.fmean(lens)
        sd = statistics.pstdev(lens) if len(lens) > 1 else 0.0
        sd = max(sd, 0.25 * mean, 1.0)
        lo, hi = max(1.0, mean - k * sd), mean + k * sd
    else:
        lo, hi = 1.0, math.inf
    if min_words:
        lo = float(min_words)
    if max_words:
        hi = float(max_words)
    return lo, hi


def in_length(texts: Sequence[str], lo: float, hi: float) -> list[bool]:
    """Drop texts outside the length window (SELF-GUIDE's length filter)."""
    return [lo <= word_count(t) <= hi for t in texts]


def not_duplicate(texts: Sequence[str], existing: Sequence[str] = ()) -> list[bool]:
    """Drop exact repeats (after case/whitespace normalization) of a demo or an earlier
    text; the first occurrence is kept."""
    seen = {text_key(t) for t in existing}
    out = []
    for t in texts:
        k = text_key(t)
        out.append(k not in seen)
        seen.add(k)
    return out


def near_duplicate_scores(texts: Sequence[str], demos: Sequence[str] = (),
                          ids: Sequence[str] | None = None) -> tuple[list[float], list[str]]:
    """For each text, the max ROUGE-L F against the demos and every earlier non-empty text,
    and which one it was (``demo:<i>`` or the earlier row's id). Computed once per table."""
    from selfguide.evaluation.rouge import RougeIndex

    ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
    index = RougeIndex(demos)
    names = [f"demo:{i}" for i in range(len(demos))]
    scores, nearest = [], []
    for t, ident in zip(texts, ids):
        if not t or not t.strip():
            scores.append(0.0)
            nearest.append("")
            continue
        s, j = index.nearest(t)
        scores.append(float(s))
        nearest.append(names[j] if j >= 0 else "")
        index.add(t)
        names.append(ident)
    return scores, nearest


def heldout_scores(texts: Sequence[str], task: TaskSpec | None) -> list[float]:
    """For each text, its max ROUGE-L F against the task's held-out evaluation inputs (1.0
    for an exact match after case/space normalisation; 0.0 without held-out rows)."""
    tests = [x.input for x in task.test] if task is not None else []
    if not tests:
        return [0.0] * len(texts)
    from selfguide.evaluation.rouge import RougeIndex

    keys = {text_key(t) for t in tests}
    index = RougeIndex(tests)
    out = []
    for t in texts:
        t = str(t or "")
        if not t.strip():
            out.append(0.0)
        elif text_key(t) in keys:
            out.append(1.0)
        else:
            out.append(float(index.nearest(t)[0]))
    return out


def ensure_near_duplicate_scores(df: pd.DataFrame, task: TaskSpec | None) -> pd.DataFrame:
    """Add ``nd_score``/``nd_nearest`` (and ``heldout_score``) if missing or incomplete (in
    row order)."""
    if "heldout_score" not in df.columns or df["heldout_score"].isna().any():
        df = df.copy()
        df["heldout_score"] = heldout_scores(df["input"].fillna("").tolist(), task)
    if "nd_score" in df.columns and not df["nd_score"].isna().any():
        return df
    df = df.copy()
    demos = [d.input for d in task.demos] if task is not None else []
    s, n = near_duplicate_scores(df["input"].fillna("").tolist(), demos, df["id"].tolist())
    df["nd_score"], df["nd_nearest"] = s, n
    return df


# --------------------------------------------------------------------------- balance

def balance_mask(labels: Sequence[str], eligible: Sequence[bool], rng: random.Random
                 ) -> list[bool]:
    """Downsample every label among eligible rows to the rarest present label's count."""
    groups: dict[str, list[int]] = {}
    for i, (lab, ok) in enumerate(zip(labels, eligible)):
        if ok and lab:
            groups.setdefault(lab, []).append(i)
    out = [True] * len(labels)
    if len(groups) < 2:
        return out
    n = min(len(v) for v in groups.values())
    for lab in sorted(groups):
        rows = groups[lab]
        keep = set(rng.sample(rows, n))
        for i in rows:
            out[i] = i in keep
    return out


# --------------------------------------------------------------------------- apply

def _col(df: pd.DataFrame, name: str, default: Any) -> list:
    if name not in df.columns:
        return [default] * len(df)
    col = df[name]
    values = col.tolist()
    if col.dtype != object and not col.isna().any():
        return values
    return [default if _missing(v) else v for v in values]


def _missing(v: Any) -> bool:
    if v is None:
        return True
    return isinstance(v, float) and math.isnan(v)


def demo_template(task: TaskSpec | None) -> InputTemplate:
    """The structure every demo input of ``task`` shares (empty without a task)."""
    return infer_template([d.input for d in task.demos]) if task is not None \
        else InputTemplate()


def has_structure(texts: Sequence[str], template: InputTemplate, min_share: float
                  ) -> list[bool]:
    """Drop inputs that carry less than ``min_share`` of the demos' shared structure
    (issue 39: without the fields, labels follow the model's prior, not the input)."""
    if template.empty or min_share <= 0:
        return [True] * len(texts)
    return [template.score(t) >= min_share - 1e-9 for t in texts]


def input_masks(df: pd.DataFrame, cfg: FilterConfig, task: TaskSpec | None
                ) -> dict[str, list[bool]]:
    """The input-stage keep-masks (needs ``nd_score``; see :func:`ensure_near_duplicate_scores`)."""
    inputs = [str(x) for x in _col(df, "input", "")]
    demos = [d.input for d in task.demos] if task is not None else []
    lo, hi = length_window(demos, cfg.length_k, cfg.min_words, cfg.max_words)
    nd = [float(x) for x in _col(df, "nd_score", 0.0)]
    held = [float(x) for x in _col(df, "heldout_score", 0.0)]
    masks = {
        "empty": not_empty(inputs),
        "held_out": [s < cfg.near_duplicate_threshold for s in held],
        "noise": no_noise(inputs, cfg.noise_terms),
        "structure": has_structure(inputs, demo_template(task), cfg.min_structure),
        "length": in_length(inputs, lo, hi),
        "duplicate": not_duplicate(inputs, demos),
        "near_duplicate": [s < cfg.near_duplicate_threshold for s in nd],
    }
    if not cfg.filter_given:
        given = [o == "given" for o in _col(df, "origin", "generated")]
        for name in GENERATED_TEXT_FILTERS:
            masks[name] = [m or g for m, g in zip(masks[name], given)]
    return masks


def assign_labels(df: pd.DataFrame, cfg: FilterConfig, task: TaskSpec
                  ) -> tuple[list[str], list[bool]]:
    """Classification: (label per row under ``cfg.label_strategy``, label-filter mask)."""
    labels = list(task.labels)
    vote_l = [str(x) for x in _col(df, "label_vote", "")]
    target = [str(x) for x in _col(df, "target_label", "")]
    cal_l, cal_m = calibrated_labels(_col(df, "label_scores", None), labels)
    # "auto" is resolved from the run's labelling evidence by choice.resolve_filters
    # (selfguide.methods.selfguide.choice) before this; without evidence it is the vote.
    strat = strategies.BY_NAME[strategies.in_effect(cfg.label_strategy)]
    if strat.name == "calibrated":
        lab = cal_l
        ok = [x in labels and m >= cfg.calibration_margin for x, m in zip(lab, cal_m)]
    elif strat.name != "agree":  # the labels of the strategy's column
        lab = rank_labels(_col(df, strat.column, None), labels) if strat.needs_scores \
            else [str(x) for x in _col(df, strat.column, "")]
        ok = [x in labels for x in lab]
    else:  # agree
        src = vote_l if cfg.agree_source == "vote" else cal_l
        ok = [s in labels and s == t for s, t in zip(src, target)]
        if cfg.agree_source == "calibrated":
            ok = [o and m >= cfg.calibration_margin for o, m in zip(ok, cal_m)]
        lab = target
    return [x if o else "" for x, o in zip(lab, ok)], ok


def apply(df: pd.DataFrame, cfg: FilterConfig, task: TaskSpec | None = None, *,
          overrides: dict[str, bool] | None = None, stage: str = "all") -> pd.DataFrame:
    """Annotate every row with the filter masks, ``label``, ``drop_reason`` and ``kept``.

    Args:
        df: The candidates table (``id``, ``input``, and after stage 2 ``samples``,
            ``output``, ``vote_share``, ``label_vote``, ``label_scores``...).
        cfg: Thresholds and the label strategy.
        task: The task (demos for the length windows and duplicates; labels).
        overrides: Manual decisions ``{id: keep}``: True keeps a row whatever the filters
            say, False drops it (reason ``manual``).
        stage: ``"input"`` applies only the input filters (used between the stages).

    Returns:
        A copy; no row is removed.
    """
    df = ensure_near_duplicate_scores(df, task)
    out = df.copy()
    template = demo_template(task)
    out["structure_score"] = [template.score(str(x)) for x in _col(out, "input", "")]
    masks = input_masks(out, cfg, task)
    n = len(out)
    if stage == "all":
        masks.update(_output_masks(out, cfg, task, masks))
    else:
        for name in OUTPUT_FILTERS:
            masks[name] = [True] * n
        out["label"] = [""] * n
    overrides = overrides or {}
    ids = out["id"].tolist()
    masks["manual"] = [overrides.get(i, True) is not False for i in ids]
    import numpy as np

    mat = np.asarray([masks[name] for name in ORDER], dtype=bool).reshape(len(ORDER), n)
    forced = np.asarray([overrides.get(i) is True for i in ids], dtype=bool)
    failed = ~mat.all(axis=0) & ~forced
    first = np.argmin(mat, axis=0)
    names = np.asarray(ORDER, dtype=object)
    reasons = np.where(failed, names[first] if n else names[:0], "").tolist()
    for name in ORDER:
        out[f"f_{name}"] = np.asarray(masks[name], dtype=bool)
    out["drop_reason"] = np.asarray(reasons, dtype=object)
    out["kept"] = np.asarray([r == "" for r in reasons], dtype=bool)
    return out


def _output_masks(out: pd.DataFrame, cfg: FilterConfig, task: TaskSpec | None,
                  in_masks: dict[str, list[bool]]) -> dict[str, list[bool]]:
    n = len(out)
    samples = _col(out, "samples", None)
    annotated = [s is not None and len(s) > 0 for s in samples]
    outputs = [str(x) for x in _col(out, "output", "")]
    inputs = [str(x) for x in _col(out, "input", "")]
    share = [float(x) for x in _col(out, "vote_share", 0.0)]
    is_cls = task is not None and task.is_classification
    m: dict[str, list[bool]] = {"annotated": annotated}
    m["output_empty"] = [a and bool(o.strip()) for a, o in zip(annotated, outputs)]
    m["output_noise"] = no_noise(outputs, cfg.noise_terms)
    m["repetition"] = [not (cfg.drop_repetitive and repetitive(o)) for o in outputs]
    if is_cls:
        m["output_length"] = [True] * n
        m["copy"] = m["relation"] = m["agreement"] = [True] * n
        uses_vote = strategies.uses_vote(cfg.label_strategy, cfg.agree_source)
        if not uses_vote:
            m["output_noise"] = [True] * n
            m["output_empty"] = [True] * n
        m["consistency"] = [s >= cfg.min_frequency for s in share] if uses_vote else [True] * n
        labels, ok = assign_labels(out, cfg, task)
        m["label"] = ok
        out["label"] = labels
    else:
        m.update(_generation_masks(out, cfg, task, inputs, outputs))
        m["label"] = [True] * n
        out["label"] = [""] * n
    # Balance among rows that pass everything before it.
    import numpy as np

    allm = [*in_masks.values(), *m.values()]
    before = np.asarray(allm, dtype=bool).reshape(len(allm), n).all(axis=0).tolist()
    if is_cls and cfg.balance and strategies.balances(cfg.label_strategy):  # not own
        m["balance"] = balance_mask(out["label"].tolist(), before, random.Random(cfg.seed))
    else:
        m["balance"] = [True] * n
    if cfg.max_examples:
        eligible = [b and bl for b, bl in zip(before, m["balance"])]
        idx = [i for i, e in enumerate(eligible) if e]
        if len(idx) > cfg.max_examples:
            keep = set(random.Random(cfg.seed + 1).sample(idx, cfg.max_examples))
            m["balance"] = [bl and (not e or i in keep)
                            for i, (bl, e) in enumerate(zip(m["balance"], eligible))]
    return m


def _generation_masks(out: pd.DataFrame, cfg: FilterConfig, task: TaskSpec | None,
                      inputs: list[str], outputs: list[str]) -> dict[str, list[bool]]:
    """Length, copy, relation to the demos and sample agreement (generation tasks)."""
    pairs = [(d.input, d.output) for d in task.demos] if task is not None else []
    relation = demo_relation(pairs)
    lo, hi = length_window([o for _, o in pairs], cfg.length_k)
    agreement = _col(out, "agreement", None)  # None: a run from before consensus
    return {
        "output_length": in_length(outputs, lo, hi),
        "copy": [not (cfg.drop_copies and not relation.admits_copies(cfg.relation_margin)
                      and o.strip()
                      and text_key(o) == text_key(i)) for o, i in zip(outputs, inputs)],
        "relation": in_relation(inputs, outputs, relation, cfg.relation_margin)
        if cfg.relation_margin < 5.0 else [True] * len(outputs),
        "consistency": [True] * len(outputs),
        "agreement": [a is None or float(a) >= cfg.min_agreement for a in agreement],
    }


def funnel(df: pd.DataFrame) -> list[dict]:
    """Counts through the SELF-GUIDE filters in :data:`ORDER`; with the user's own inputs
    in the table, each step also counts what remains of each origin (``by_origin``)."""
    steps = _funnel(df, ORDER)
    if "origin" not in df.columns or not (df["origin"] == "given").any():
        return steps
    origin = df["origin"].fillna("generated").astype(str).tolist()
    reasons = df["drop_reason"].tolist()
    left = {o: origin.count(o) for o in ("given", "generated")}
    for step in steps:
        for o in left:
            left[o] -= sum(1 for r, x in zip(reasons, origin) if x == o and r == step["step"])
        step["by_origin"] = dict(left)
    return steps


def votes_json(votes: dict[str, int]) -> str:
    return json.dumps(votes, ensure_ascii=False)
