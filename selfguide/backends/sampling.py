"""Picking the next token of every row: argmax, or a sample after temperature / top-k / top-p.

What it does: the same distribution as transformers' ``TemperatureLogitsWarper``,
``TopKLogitsWarper`` and ``TopPLogitsWarper`` followed by ``torch.multinomial`` (what
``generate`` does), computed on the few hundred most likely tokens of each row instead of
the whole vocabulary. ``multinomial`` over a [rows, 49,152] distribution draws one
exponential per vocabulary entry (65 ms a step for 30 rows on two cores, a fifth of a
labelling decode step), and the top-p warper sorts the whole vocabulary; here one
``topk`` picks the ``CANDIDATES`` best tokens, their probabilities come from the full
log-sum-exp, top-p is applied among them, and one uniform number per row is turned into a
token through the cumulative sum (inverse CDF). Plain temperature sampling needs no order:
the softmax over the vocabulary as it is, then the same inverse CDF.

Exact, not an approximation: when the candidates' probability mass reaches ``top_p`` the
nucleus lies among them (every token outside has at least that much mass above it, so
top-p would drop it); when a row's does not (a flat distribution) the search widens, up to
the whole sorted vocabulary. Ties between equal logits at the
top-k / top-p boundary may be resolved differently from transformers (a different but
equally valid order).

What it does not do: repetition penalties or other logits processors (the backend falls
back to ``model.generate`` for models that ask for them). torch is imported inside functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CANDIDATES = 256  # tokens per row the nucleus is looked for in first


def token_picker(greedy: bool, temperature: float, top_k: int, top_p: float
                 ) -> Callable[..., Any]:
    """``(logits [nodes, vocab], owner [rows] | None) -> tokens [rows]``: a token for every
    row from the logits of its node ``owner[row]`` (None: one row per node), drawn
    independently per row (see the module docstring)."""
    if greedy:
        def best(logits: Any, owner: Any = None) -> Any:
            top = logits.argmax(dim=-1)
            return top if owner is None else top[owner]

        return best

    def pick(logits: Any, owner: Any = None) -> Any:
        ids, probs = nucleus(logits, temperature, top_k, top_p)
        return draw(ids, probs, owner)

    return pick


def nucleus(logits: Any, temperature: float, top_k: int = 0, top_p: float = 1.0,
            candidates: int = CANDIDATES) -> tuple[Any, Any]:
    """Token ids [rows, k] (most likely first; None = the whole vocabulary in its order)
    and their sampling probabilities [rows, k] (zero for tokens top-k / top-p drop; each row
    sums to 1)."""
    import torch

    x = logits.float() / temperature
    vocab = x.shape[-1]
    if not top_k and top_p >= 1.0:  # every token can be drawn: no order needed
        return None, torch.softmax(x, dim=-1)
    k = min(top_k or candidates, vocab)
    vals, ids = x.topk(k, dim=-1) if k < vocab else x.sort(dim=-1, descending=True)
    norm = vals.logsumexp(-1, keepdim=True) if top_k else x.logsumexp(-1, keepdim=True)
    probs = (vals - norm).exp()
    if top_p < 1.0:
        if not top_k and k < vocab and bool((probs.sum(-1) < top_p).any()):
            # the nucleus reaches past the candidates: 16x more (a full sort is ~30x topk)
            return nucleus(logits, temperature, 0, top_p, candidates=min(vocab, k * 16))
        before = probs.cumsum(-1) - probs  # mass of the more likely tokens
        keep = before < top_p
        keep[:, 0] = True
        probs = probs * keep
    return ids, probs / probs.sum(-1, keepdim=True)


def draw(ids: Any, probs: Any, owner: Any = None) -> Any:
    """One token per row from the ``probs`` over ``ids`` (None: the vocabulary) of its node
    ``owner[row]``, by the inverse CDF of one uniform draw per row: the first token whose
    cumulative probability exceeds it (so never a zero-probability one)."""
    import torch

    cdf = probs.cumsum(-1)
    if owner is not None:
        cdf, ids = cdf[owner], (ids[owner] if ids is not None else None)
    u = torch.rand((cdf.shape[0], 1), device=cdf.device, dtype=cdf.dtype) * cdf[:, -1:]
    # the number of entries <= u (a cumulative sum of non-negatives never decreases), by
    # binary search instead of a comparison over the whole vocabulary
    j = torch.searchsorted(cdf, u, right=True)
    over = j >= cdf.shape[-1]  # u rounded up to the total: the last token with mass
    if bool(over.any()):
        last = torch.searchsorted(cdf, cdf[:, -1:].contiguous())
        j = torch.where(over, last, j)
    return (j if ids is None else ids.gather(-1, j)).squeeze(-1)
