"""Shared-prefix training forward: the tokens every row of a batch starts with run once.

What it does: a training row is the task prompt (instruction + demos, ~85% of its tokens)
followed by an input and its answer, so the rows of one batch share a long prefix.
:func:`shared_prefix_len` finds it; :func:`prefix_forward` runs it once for one row, repeats
its KV cache across the batch (``Cache.batch_repeat_interleave``, which autograd follows)
and runs only the suffixes on top, with the full attention mask. The loss, the gradients
and the logits at the kept positions are those of the full forward up to float noise:
every suffix token attends to the same keys and values, and the prefix's gradient is the
sum of what each row sends back through the repeated cache (tested in
``tests/test_training_batches.py``).

What it does not do: decide whether to share (:mod:`selfguide.training.loop` does: one
process, no gradient checkpointing, a model with ``logits_to_keep``) or compute the loss.
"""

from __future__ import annotations

from typing import Any

MIN_SHARED = 16  # a shorter shared prefix does not pay for its own forward pass


def shared_prefix_len(input_ids: Any, attention_mask: Any, keep: Any) -> int:
    """Tokens that every row of the batch starts with and that the loss needs no logits
    for, leaving every row at least one token after it; 0 when under ``MIN_SHARED`` or
    the batch has one row (nothing to share).

    ``keep`` marks the positions whose logits the loss reads (a position predicts the next
    token): the prefix must end before the first of them in any row.
    """
    import torch

    rows, width = input_ids.shape
    if rows < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0)
    if attention_mask is not None:
        same &= attention_mask.bool().all(dim=0)
    differ = torch.nonzero(~same)
    n = int(differ[0]) if len(differ) else width
    kept = torch.nonzero(keep.any(dim=0))
    if len(kept):
        n = min(n, int(kept[0]))
    shortest = int(attention_mask.sum(dim=1).min()) if attention_mask is not None else width
    n = min(n, shortest - 1)
    return n if n >= MIN_SHARED else 0


def prefix_forward(model: Any, input_ids: Any, attention_mask: Any, keep: Any,
                   n: int) -> Any | None:
    """The model's output for the batch with its first ``n`` tokens (common to all rows)
    run once: logits at ``keep[:, n:]`` of the suffixes, as ``model(...,
    logits_to_keep=keep)`` would give. None (nothing run after the prefix) when the
    model's cache cannot be repeated this simply (sliding-window or recurrent layers)."""
    import torch

    from selfguide.backends.decoding import cache_kw

    rows = input_ids.shape[0]
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    pre = model(input_ids=input_ids[:1, :n], attention_mask=attention_mask[:1, :n],
                use_cache=True, logits_to_keep=1)
    cache = getattr(pre, "cache", None)  # transformers >= 5.2x; past_key_values before
    if cache is None:
        cache = getattr(pre, "past_key_values", None)
    if not _repeatable(cache):
        return None
    cache.batch_repeat_interleave(rows)
    return model(input_ids=input_ids[:, n:], attention_mask=attention_mask, use_cache=True,
                 logits_to_keep=keep[:, n:], **cache_kw(model, cache))


def _repeatable(cache: Any) -> bool:
    """A ``DynamicCache`` of plain full-attention layers (what ``batch_repeat_interleave``
    copies exactly)."""
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        return False
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # an older transformers: no per-layer classes to check
        return False
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def rows_shared_prefix(rows: list[dict], ignore_index: int = -100) -> int:
    """The prefix every tokenized training row (``input_ids``, ``labels``) shares and that no
    loss position falls in: what each batch of them runs once at least (0 if under
    ``MIN_SHARED``). Used to plan how many rows a merged batch can hold."""
    from selfguide.backends.decoding import common_prefix

    if len(rows) < 2:
        return 0
    n = common_prefix([r["input_ids"] for r in rows])
    for r in rows:
        first = next((i for i, t in enumerate(r["labels"]) if t != ignore_index),
                     len(r["labels"]))
        n = min(n, first - 1, len(r["input_ids"]) - 1)  # position first-1 predicts it
    return n if n >= MIN_SHARED else 0
