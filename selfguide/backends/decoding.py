"""The decode loop of the transformers backend: a shared-prefix KV cache, rows that leave.

What it does:

1. Prefix caching. The prompts of one call usually share a long token prefix (the
   instruction + demos of ``prompts.task_prompt`` are 95–98% of each labelling and
   evaluation prompt). :func:`build_prefix` runs that prefix once with batch size 1;
   :func:`prefill` copies its keys/values to every row of a batch and runs only the
   suffixes. A row's cache is laid out ``[prefix | holes | suffix]``: the holes (padding of
   shorter suffixes) sit *between* prefix and suffix and are zeros in the attention mask, and
   position ids are counted per row, so every real token sees exactly the keys and positions
   it would see in an unpadded forward pass. Like vLLM's automatic prefix caching or SGLang's
   radix cache, restricted to the one prefix a call's prompts have in common
   (https://docs.vllm.ai/en/latest/design/prefix_caching.html).
2. Decoding without wasted steps (:func:`decode`). Greedy or sampled (transformers' own
   temperature / top-k / top-p warpers); a row that is done (EOS, a stop string, its token
   budget) is dropped from the cache and the batch tensors, so it stops costing compute.
   Stop strings are only checked on rows whose new token could complete one (a per-vocabulary
   mask of tokens that contain a stop string's last character), not by decoding every row's
   tail every step.

What it does not do: tokenize, batch or decode text (:mod:`selfguide.backends.hf`), or
refill the places of finished rows with waiting prompts (continuous batching: rows of later
batches wait for the next batch). The cache lives for one call only: nothing is reused
across calls, so a changed model (an adapter switched off, new weights) can never read a
stale cache. transformers' own continuous batching (``model.generate_batch``) was measured
on this CPU first and was slower than the plain batched ``generate`` (see bench/README.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MIN_PREFIX = 8  # shorter shared prefixes are not worth a separate forward pass


def common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token sequences (0 for none)."""
    # commonprefix compares only the min and max sequence (C-level list comparison)
    return len(os.path.commonprefix([list(s) for s in seqs])) if seqs else 0


def usable_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """The prefix length to cache: common to all, leaving every row >= 1 suffix token (its
    last token's logits are needed); 0 when shorter than ``MIN_PREFIX``."""
    if len(seqs) < 1:
        return 0
    p = min(common_prefix(seqs), min(len(s) for s in seqs) - 1)
    return p if p >= MIN_PREFIX else 0


@dataclass
class Prefix:
    """The KV cache of a shared prefix, batch size 1."""

    ids: list[int]
    layers: list[tuple[Any, Any]]  # per layer (keys, values): [1, heads, length, head_dim]

    @property
    def length(self) -> int:
        return len(self.ids)


@dataclass
class Rows:
    """A prefilled batch ready to decode."""

    cache: Any      # DynamicCache, one row per batch row
    mask: Any       # [rows, cache length] long: 1 = a real token
    pos: Any        # [rows] long: position id of each row's next token
    logits: Any     # [rows, vocab] float32: logits of each row's next token


def build_prefix(model: Any, ids: list[int], device: str, pass_positions: bool) -> Prefix | None:
    """Prefill ``ids`` once; None when the model's cache is not a plain full-attention one
    (sliding-window or recurrent layers cannot be copied this simply)."""
    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=model_config(model))
    x = torch.tensor([ids], dtype=torch.long, device=device)
    kw = {"position_ids": torch.arange(len(ids), device=device).unsqueeze(0)} \
        if pass_positions else {}
    model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=True, logits_to_keep=1,
          **cache_kw(model, cache), **kw)
    if not all(type(layer) is DynamicLayer for layer in cache.layers):
        return None
    return Prefix(list(ids), [(layer.keys, layer.values) for layer in cache.layers])


def prefill(model: Any, seqs: list[list[int]], prefix: Prefix | None, pad_id: int,
            device: str, pass_positions: bool, room: int = 0) -> Rows:
    """Run ``seqs`` (each starting with ``prefix.ids`` when a prefix is given) into a fresh
    cache with ``room`` more tokens preallocated: the prefix is copied, only the suffixes
    are computed."""
    import torch

    p = prefix.length if prefix is not None else 0
    sufs = [s[p:] for s in seqs]
    k, width = len(seqs), max(len(s) for s in sufs)
    ids = torch.full((k, width), pad_id, dtype=torch.long)
    mask = torch.zeros((k, p + width), dtype=torch.long)
    mask[:, :p] = 1
    for r, s in enumerate(sufs):
        ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[r, p + width - len(s):] = 1
    ids, mask = ids.to(device), mask.to(device)
    cache = new_cache(model, width + room)
    if prefix is not None:
        for i, (keys, values) in enumerate(prefix.layers):
            cache.update(keys.expand(k, -1, -1, -1), values.expand(k, -1, -1, -1), i)
    # positions as generate computes them (cumsum of the mask), so holes are not counted
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)[:, p:]
    kw = {"position_ids": pos} if pass_positions else {}
    logits = model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1,
                   **cache_kw(model, cache), **kw).logits[:, -1].float()
    return Rows(cache, mask, mask.sum(dim=1), logits)


def new_cache(model: Any, room: int) -> Any:
    """A ``DynamicCache`` whose full-attention layers write into preallocated room instead
    of concatenating the whole cache every step (``torch.cat`` was 18% of a decode's time)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=model_config(model))
    if all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [_room_layer_class()(room) for _ in cache.layers]
    return cache


def _room_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class RoomLayer(DynamicLayer):
        """A :class:`DynamicLayer` over buffers with spare room; ``keys``/``values`` are
        views of the filled part."""

        def __init__(self, room: int):
            super().__init__()
            self.room, self.n = max(1, room), 0

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any):
            new = key_states.shape[-2]
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.bk = self.bv = None
            if self.bk is None or self.n + new > self.bk.shape[-2]:
                self._resize(self.n + new + self.room, key_states, value_states)
            self.bk[:, :, self.n:self.n + new] = key_states
            self.bv[:, :, self.n:self.n + new] = value_states
            self.n += new
            self._view()
            return self.keys, self.values

        def _resize(self, length: int, k: Any, v: Any) -> None:
            b, h, _, d = k.shape
            bk, bv = k.new_empty((b, h, length, d)), v.new_empty((b, h, length, v.shape[-1]))
            if self.bk is not None:
                bk[:, :, :self.n], bv[:, :, :self.n] = self.keys, self.values
            self.bk, self.bv = bk, bv

        def _view(self) -> None:
            self.keys, self.values = self.bk[:, :, :self.n], self.bv[:, :, :self.n]

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.n:
                self.bk = self.bk.repeat_interleave(repeats, dim=0)
                self.bv = self.bv.repeat_interleave(repeats, dim=0)
                self._view()

        def batch_select_indices(self, indices: Any) -> None:
            if self.n:
                self.bk, self.bv = self.bk[indices], self.bv[indices]
                self._view()

    return RoomLayer


def repeat_rows(rows: Rows, n: int) -> Rows:
    """Each row ``n`` times in a row (the n samples of a prompt share its prefill)."""
    if n > 1:
        rows.cache.batch_repeat_interleave(n)
        rows = Rows(rows.cache, rows.mask.repeat_interleave(n, 0),
                    rows.pos.repeat_interleave(n, 0), rows.logits.repeat_interleave(n, 0))
    return rows


def token_picker(greedy: bool, temperature: float, top_k: int, top_p: float
                 ) -> Callable[[Any], Any]:
    """``logits [rows, vocab] -> tokens [rows]``: argmax, or a sample after transformers'
    temperature / top-k / top-p warpers (the processors ``generate`` would use)."""
    import torch

    if greedy:
        return lambda logits: logits.argmax(dim=-1)
    from transformers import (LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper,
                              TopPLogitsWarper)

    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))

    def pick(logits: Any) -> Any:
        scores = warpers(None, logits)
        return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)

    return pick


class StopScanner:
    """Finds rows whose generated text contains a stop string, decoding only the rows whose
    newest token contains the last character of some stop string (or decodes to nothing
    printable alone, e.g. part of a multi-byte character)."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], vocab: int, device: str):
        import torch

        self.tokenizer, self.stops = tokenizer, tuple(s for s in stops if s)
        ends = {s[-1] for s in self.stops}
        cand = torch.ones(vocab, dtype=torch.bool)
        if not any(c == " " for c in ends):  # a decode may drop a leading space: check all
            n = min(vocab, len(tokenizer))
            pieces = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=True)
            cand[:n] = torch.tensor([not p or "\ufffd" in p or any(c in p for c in ends)
                                     for p in pieces])
        self.candidates = cand.to(device)

    def done(self, tokens: Any, rows: list[int], live: list[bool], out: list[list[int]]
             ) -> list[int]:
        """Live batch positions (of ``rows``) whose text now contains a stop string."""
        hits = self.candidates[tokens].nonzero().flatten().tolist()
        found = []
        for b in hits:
            if not live[b]:
                continue
            text = self.tokenizer.decode(out[rows[b]], skip_special_tokens=True)
            if any(s in text for s in self.stops):
                found.append(b)
        return found


@dataclass
class DecodeStats:
    steps: int = 0        # forward passes
    row_steps: int = 0    # sum of batch rows over the forward passes (compute spent)


def _take(tokens: list[int], ended: list[bool], live_rows: list[int], live: list[bool],
          out: list[list[int]], budgets: list[int]) -> None:
    """Append each live row's new token; a row ends at EOS (not kept) or at its budget."""
    for b, tok in enumerate(tokens):
        if not live[b]:
            continue
        if ended[b]:
            live[b] = False
            continue
        r = live_rows[b]
        out[r].append(tok)
        if len(out[r]) >= budgets[r]:
            live[b] = False


def decode(model: Any, rows: Rows, budgets: list[int], *, pick: Callable[[Any], Any],
           eos: Sequence[int], stop: StopScanner | None = None,
           cancel: Callable[[], bool] | None = None, max_time: float | None = None,
           pass_positions: bool = True, stats: DecodeStats | None = None) -> list[list[int]]:
    """Generated token ids per row (without the EOS), at most ``budgets[r]`` per row.

    A row is done at EOS, at a stop string or at its budget; done rows are removed from the
    batch once they are >= 1/8 of it (each removal copies the cache, so not one by one).
    ``cancel`` (polled at most every 0.2 s) and ``max_time`` end every row.
    """
    import torch

    stats = stats if stats is not None else DecodeStats()
    out: list[list[int]] = [[] for _ in budgets]
    eos_t = torch.tensor(sorted(set(eos)) or [-1], device=rows.logits.device)
    cache, mask, pos, logits = rows.cache, rows.mask, rows.pos, rows.logits
    live_rows = list(range(len(budgets)))       # batch position -> row
    live = [True] * len(budgets)                # per batch position: still decoding
    ckw = cache_kw(model, cache)
    t0 = last_poll = time.monotonic()
    while True:
        tokens = pick(logits)
        _take(tokens.tolist(), torch.isin(tokens, eos_t).tolist(), live_rows, live, out,
              budgets)
        if stop is not None:
            for b in stop.done(tokens, live_rows, live, out):
                live[b] = False
        now = time.monotonic()
        if max_time is not None and now - t0 >= max_time:
            break
        if cancel is not None and now - last_poll >= 0.2:
            last_poll = now
            if cancel():
                break
        n_live = sum(live)
        if n_live == 0:
            break
        if (len(live) - n_live) * 8 >= len(live):  # drop the done rows
            keep = [b for b, x in enumerate(live) if x]
            idx = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(idx)
            mask, pos, tokens = mask[idx], pos[idx], tokens[idx]
            live_rows = [live_rows[b] for b in keep]
            live = [True] * len(keep)
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        kw = {"position_ids": pos.unsqueeze(1)} if pass_positions else {}
        logits = model(input_ids=tokens.unsqueeze(1), attention_mask=mask, use_cache=True,
                       **ckw, **kw).logits[:, -1].float()
        pos = pos + 1
        stats.steps += 1
        stats.row_steps += mask.shape[0]
    return out


def _base(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def model_config(model: Any) -> Any:
    return _base(model).config


def cache_kw(model: Any, cache: Any) -> dict:
    """The cache keyword of the model's forward: ``cache`` (transformers >= 5.2x; the
    old ``past_key_values`` is deprecated) or ``past_key_values``."""
    import inspect

    params = inspect.signature(_base(model).forward).parameters
    return {"cache": cache} if "cache" in params else {"past_key_values": cache}
