"""The decode loop of the transformers backend: a shared-prefix KV cache, shared samples.

What it does:

1. Prefix caching. The prompts of one call usually share a long token prefix (the
   instruction + demos of ``prompts.task_prompt`` are 95–98% of each labelling and
   evaluation prompt). :func:`build_prefix` runs that prefix once with batch size 1;
   :func:`prefill` runs only the suffixes on top of it: the prefix is held once and
   attended by every row (:mod:`.cascade`, CPU + ``sdpa``) or copied into every row. A row's cache is laid out ``[prefix | holes | suffix]``: the holes (padding of
   shorter suffixes) sit *between* prefix and suffix and are zeros in the attention mask, and
   position ids are counted per row, so every real token sees exactly the keys and positions
   it would see in an unpadded forward pass. Like vLLM's automatic prefix caching or SGLang's
   radix cache, restricted to the one prefix a call's prompts have in common
   (https://docs.vllm.ai/en/latest/design/prefix_caching.html). Only where the cache is
   plain full attention for the call (:func:`prefix_blocker`, the one predicate): a call
   that reaches a sliding window (Mistral v0.1, Gemma 2/3, Phi-3) decodes in the same loop
   with every prompt prefilled whole (the fallback; tests/models/test_families.py checks
   both against ``model.generate`` per family).
2. Decoding without wasted steps (:func:`decode`). Greedy or sampled (the distribution of
   transformers' temperature / top-k / top-p warpers, :mod:`selfguide.backends.sampling`).
   The ``n`` samples of a prompt share one cache row while their tokens agree and split
   when they differ (a tree of samples, as in SGLang's parallel sampling over its radix
   cache): n votes at a low temperature cost about one row, not n. Rows that are done (EOS,
   a stop string, the token budget) are dropped from the cache (:mod:`.kvcache`), so they
   stop costing compute. Stop strings are only checked on rows whose new token could complete one (a per-vocabulary
   mask of tokens that contain a stop string's last character), not by decoding every row's
   tail every step.

3. Continuous refill (``decode(..., feed=...)``; off by default in
   :class:`~selfguide.backends.hf.HFGenerator`: on a 2-core CPU it saved a third of the
   decode steps but not time, the refilled rows' holes costing what the steps saved).
   Once a quarter of a batch's prompts are done, waiting prompts are prefilled and join
   the running cache in their places, right-aligned with holes before them (the same
   ``[prefix | holes | suffix]`` layout); hole columns every row has are dropped.
4. A prefill's own attention (:func:`prefill`, on the cascade path) runs causal per row
   over its real tokens, without a [rows, q, q] mask (:func:`cascade.merged_fresh`).

What it does not do: tokenize, batch or decode text (:mod:`selfguide.backends.hf`). The
cache lives for one call only: nothing is reused across calls, so a changed model (an
adapter switched off, new weights) can never read a stale cache. transformers' own
continuous batching (``model.generate_batch``) was measured on this CPU first and was
slower than the plain batched ``generate`` (see bench/README.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from selfguide.backends import cascade, kvcache

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
    prefix: int = 0  # columns of the shared prefix at the start of every mask row


def prefix_blocker(model: Any, span: int | None = None) -> str | None:
    """THE fast-path predicate: why the shared prefix's KV cache cannot be built once and
    shared by every row for ``model``, for calls whose sequences (prompt + new tokens) are
    at most ``span`` tokens long (None: any length); None when it can.

    It reads the cache transformers itself builds for the model's config: plain
    full-attention layers (``DynamicLayer``) can be copied or attended as one prefix.
    Sliding-window layers (Mistral with ``sliding_window``, Gemma 2/3, Phi-3, ...) attend to
    the last ``sliding_window`` tokens only: when every sequence of a call is shorter than
    the window, the window never binds and they attend exactly as full attention (the fast
    path, with plain cache layers); else, as for recurrent or chunked layers, the call takes
    the fallback: the same decode loop with every prompt prefilled whole into transformers'
    own cache (exact, no prefix sharing).
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    layers = DynamicCache(config=model_config(model)).layers
    other = sorted({type(layer).__name__ for layer in layers if type(layer) is not DynamicLayer})
    if not other:
        return None
    window = sliding_window(model)
    if all("Sliding" in name for name in other) and window:
        if span is not None and span < window:
            return None
        return (f"sliding-window attention layers (window {window} tokens"
                + (f", a call's prompt + new tokens up to {span})" if span else ")"))
    return "cache layers the prefix cache cannot share (" + ", ".join(other) + ")"


def sliding_window(model: Any) -> int | None:
    """The model's sliding attention window in tokens (None: it has none)."""
    window = getattr(model_config(model), "sliding_window", None)
    return int(window) if isinstance(window, int) and window > 0 else None


def build_prefix(model: Any, ids: list[int], device: str, pass_positions: bool,
                 plain: bool = False) -> Prefix | None:
    """Prefill ``ids`` once; None when the model's cache is not a plain full-attention one
    (sliding-window or recurrent layers cannot be copied this simply). ``plain``: every
    layer's cache kept whole (sliding windows the call never reaches, :func:`prefix_blocker`)."""
    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=model_config(model))
    if plain:
        cache.layers = [DynamicLayer() for _ in cache.layers]
    x = torch.tensor([ids], dtype=torch.long, device=device)
    kw = {"position_ids": torch.arange(len(ids), device=device).unsqueeze(0)} \
        if pass_positions else {}
    model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=True, logits_to_keep=1,
          **cache_kw(model, cache), **kw)
    if not all(type(layer) is DynamicLayer for layer in cache.layers):
        return None
    return Prefix(list(ids), [(layer.keys, layer.values) for layer in cache.layers])


def prefill(model: Any, seqs: list[list[int]], prefix: Prefix | None, pad_id: int,
            device: str, pass_positions: bool, room: int = 0, samples: int = 1) -> Rows:
    """Run ``seqs`` (each starting with ``prefix.ids`` when a prefix is given) into a fresh
    cache with ``room`` more tokens and ``samples`` rows per prompt preallocated: the prefix
    is copied, only the suffixes are computed."""
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
    cache = None
    plain = prefix is not None  # a prefix exists only where plain layers are exact
    if prefix is not None and cascade.is_on(model):  # the prefix held once, not per row
        cache = cascade.new_cache(model_config(model), width + room, k * max(1, samples),
                                  prefix.layers)
    if cache is None:
        cache = kvcache.new_cache(model_config(model), width + room, rows=k * max(1, samples),
                                  plain=plain)
        for i, (keys, values) in enumerate(prefix.layers if prefix is not None else []):
            cache.update(keys.expand(k, -1, -1, -1), values.expand(k, -1, -1, -1), i)
    # positions as generate computes them (cumsum of the mask), so holes are not counted
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)[:, p:]
    kw = {"position_ids": pos} if pass_positions else {}
    with cascade.fresh_rows(cache, [len(s) for s in sufs]):
        logits = model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1,
                       **cache_kw(model, cache), **kw).logits[:, -1].float()
    return Rows(cache, mask, mask.sum(dim=1), logits, p)


def token_picker(greedy: bool, temperature: float, top_k: int, top_p: float
                 ) -> Callable[[Any], Any]:
    """``logits [rows, vocab] -> tokens [rows]``: argmax, or a sample from the distribution
    of transformers' temperature / top-k / top-p warpers (:mod:`selfguide.backends.sampling`)."""
    from selfguide.backends import sampling

    return sampling.token_picker(greedy, temperature, top_k, top_p)


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


def _next_nodes(node_of: list[int], still: list[int], tokens: dict[int, int], n_nodes: int
                ) -> tuple[list[int | None], list[int], list[int]]:
    """The nodes of the next step. A node keeps its row for the first token its rows drew;
    every other distinct token gets a new row copied from it. Returns the token per existing
    row (None: no row needs it), and the parent and token of each new row; ``node_of`` is
    updated in place (new rows numbered from ``n_nodes``)."""
    first: list[int | None] = [None] * n_nodes
    extra: dict[tuple[int, int], int] = {}
    parents, toks = [], []
    for r in still:
        node, tok = node_of[r], tokens[r]
        if first[node] is None:
            first[node] = tok
        elif first[node] != tok:
            if (node, tok) not in extra:
                extra[node, tok] = n_nodes + len(parents)
                parents.append(node)
                toks.append(tok)
            node_of[r] = extra[node, tok]
    return first, parents, toks


def _regroup(cache: Any, mask: Any, pos: Any, node_of: list[int], still: list[int],
             tokens: dict[int, int]) -> tuple[Any, Any, list[int]]:
    """Rows for the next step (see :func:`_next_nodes`): split nodes get rows appended
    (a copy of one row each); rows no sample needs keep computing until they are >= 1/4 of
    the batch, then the cache is compacted (one gather). Returns mask, positions, tokens."""
    import torch

    n = mask.shape[0]
    first, parents, toks = _next_nodes(node_of, still, tokens, n)
    live = [i for i in range(n) if first[i] is not None]
    if (n - len(live)) * 4 >= n + len(parents):
        keep = live + parents
        where = {old: new for new, old in enumerate(live)}
        for r in still:
            node = node_of[r]
            node_of[r] = where[node] if node < n else len(live) + node - n
        kvcache.keep_rows(cache, keep)
        idx = torch.tensor(keep, device=mask.device)
        return mask[idx], pos[idx], [first[i] for i in live] + toks
    if parents:
        kvcache.add_rows(cache, parents)
        idx = torch.tensor(parents, device=mask.device)
        mask, pos = torch.cat([mask, mask[idx]]), torch.cat([pos, pos[idx]])
    return mask, pos, [t if t is not None else 0 for t in first] + toks


LOOP_PERIODS = range(1, 13)  # phrase lengths (tokens) the loop guard looks for
LOOP_TOKENS = 24             # a loop is a phrase repeated over at least this many tokens


def loop_start(seq: list[int]) -> int | None:
    """Where the repeats end the first occurrence, when ``seq`` ends with one phrase of at
    most 12 tokens repeated 4+ times over at least 24 tokens (a decoding loop); else None."""
    for p in LOOP_PERIODS:
        reps = max(4, -(-LOOP_TOKENS // p))
        span = p * reps
        if len(seq) >= span and seq[-span:] == seq[-p:] * reps:
            return len(seq) - span + p
    return None


def _extend(seq: list[int], tok: int, budget: int, stop_loops: bool) -> bool:
    """Append ``tok`` to a row's tokens; whether the row goes on (under budget, no loop:
    a loop is cut after its first phrase)."""
    seq.append(tok)
    cut = loop_start(seq) if stop_loops else None
    if cut is not None:
        del seq[cut:]
        return False
    return len(seq) < budget


@dataclass
class Feed:
    """Prompts prefilled to join a running decode (continuous refill): their rows, with
    the same prefix and layout as the running batch, and one budget per sample row."""

    rows: Rows
    budgets: list[int]


# feed(free prompt slots, suffix width the running cache has room for; None = any width)
FeedFn = Callable[[int, "int | None"], "Feed | None"]
REFILL_SHARE = 4  # refill once at least 1/REFILL_SHARE of the prompt slots are free
MIN_HOLES = 16    # leading hole columns worth a copy of the cache to drop (and >= 1/8)


def decode(model: Any, rows: Rows, budgets: list[int], *, pick: Callable[..., Any],
           eos: Sequence[int], stop: StopScanner | None = None,
           cancel: Callable[[], bool] | None = None, max_time: float | None = None,
           pass_positions: bool = True, stats: DecodeStats | None = None,
           samples: int = 1, stop_loops: bool = False, feed: FeedFn | None = None,
           slots: int | None = None,
           on_done: Callable[[int, list[list[int]]], None] | None = None
           ) -> list[list[int]]:
    """Generated token ids per sample row (without the EOS), at most ``budgets[r]`` per row.

    ``rows`` holds one cache row per prompt; sample row ``r`` continues prompt
    ``r // samples``. Sample rows whose tokens so far are equal share one cache row (a
    node): one forward per node, every sample draws its own token from its node's logits
    (``pick(logits, owner)``), and a node splits where its samples draw different tokens.
    Exact: each sample sees the logits of its own sequence. At a low temperature the votes
    of a label mostly agree, so a batch runs about one row per prompt, not ``samples``.
    A row is done at EOS, at a stop string or at its budget; the cache rows no sample needs
    any more are dropped once they are >= 1/4 of the batch (:func:`_regroup`).
    ``cancel`` (polled at most every 0.2 s) ends every row; ``max_time`` ends the rows of
    a prompt that many seconds after it joined. With ``stop_loops`` a row that loops
    (:func:`loop_start`) ends, cut after the first phrase.

    Continuous refill: given ``feed``, prompts waiting behind this batch take the places of
    finished ones instead of waiting for the longest row. Once at least 1/4 of the
    ``slots`` prompts (default: the first batch's) are done, the rows no sample needs are
    dropped, ``feed(free, width)`` prefills up to ``free`` more prompts whose suffixes fit
    ``width`` positions, and their rows join the cache right-aligned, holes before them
    (:func:`kvcache.append_rows`; every real token still sees exactly its own keys and
    positions); hole columns every row has are dropped (:func:`kvcache.drop_columns`).
    Where rows cannot join a running cache (a cache of transformers' own layers, a model
    without position ids) ``feed`` is asked once the batch is done. Sample rows of fed
    prompts are numbered after the ones before (prompt ``r // samples`` in the order fed).
    ``on_done(prompt, token lists)`` is called as each prompt's last sample row ends.
    """
    st = _Decoding(model, rows, samples, pass_positions, feed, on_done)
    st.add(rows, budgets)
    st.slots = slots or len(st.left)
    stats = stats if stats is not None else DecodeStats()
    eos_set = set(eos)
    last_poll = time.monotonic()
    while True:
        still, tokens = st.draw(pick, eos_set, stop, stop_loops)
        now = time.monotonic()
        if max_time is not None:
            still = [r for r in still if now - st.joined[r // samples] < max_time]
        stopped = False
        if cancel is not None and now - last_poll >= 0.2:
            last_poll = now
            stopped = bool(cancel())
        st.finish([] if stopped else still, report=not stopped)
        if st.live:
            st.forward(tokens, stats)
        if feed is not None and not stopped:
            st.refill()
        if not st.live:
            return st.out


class _Decoding:
    """The state of one :func:`decode`: the cache and its rows, the sample rows and the
    prompts they belong to."""

    def __init__(self, model: Any, rows: Rows, samples: int, pass_positions: bool,
                 feed: FeedFn | None, on_done: Callable[..., None] | None):
        self.model, self.samples, self.pass_positions = model, samples, pass_positions
        self.feed, self.on_done, self.prefix = feed, on_done, rows.prefix
        self.out: list[list[int]] = []
        self.budgets: list[int] = []
        self.node_of: list[int] = []   # sample row -> cache row (node)
        self.live: list[int] = []      # sample rows still decoding
        self.left: list[int] = []      # live sample rows per prompt
        self.joined: list[float] = []  # when each prompt joined
        self.slots = 0
        self._use(rows)

    def _use(self, rows: Rows) -> None:
        self.cache, self.mask, self.pos, self.logits = rows.cache, rows.mask, rows.pos, rows.logits
        self.ckw = cache_kw(self.model, self.cache)
        self.in_place = kvcache.can_refill(self.cache) and self.pass_positions
        self.lead = 0 if cascade.is_cascade(self.cache) else self.prefix

    def add(self, rows: Rows, budgets: list[int]) -> None:
        """Sample rows for the prompts of ``rows`` (one cache row each, appended)."""
        base, first, k = self.mask.shape[0] - rows.mask.shape[0], len(self.budgets), \
            len(budgets) // self.samples
        self.budgets += budgets
        self.out += [[] for _ in budgets]
        self.node_of += [base + j // self.samples for j in range(len(budgets))]
        self.live += list(range(first, len(self.budgets)))
        self.left += [self.samples] * k
        self.joined += [time.monotonic()] * k

    def draw(self, pick: Callable[..., Any], eos: set[int], stop: StopScanner | None,
             stop_loops: bool) -> tuple[list[int], dict[int, int]]:
        """Each live sample row's next token: the rows that go on, and the tokens drawn."""
        import torch

        owner = torch.tensor([self.node_of[r] for r in self.live], device=self.logits.device)
        tokens, still = {}, []
        for r, tok in zip(self.live, pick(self.logits, owner).tolist()):
            if tok not in eos and _extend(self.out[r], tok, self.budgets[r], stop_loops):
                still.append(r)
            if tok not in eos:
                tokens[r] = tok
        if stop is not None and still:
            last = torch.tensor([tokens[r] for r in still], device=self.logits.device)
            ended = set(stop.done(last, still, [True] * len(still), self.out))
            still = [r for b, r in enumerate(still) if b not in ended]
        return still, tokens

    def finish(self, still: list[int], report: bool) -> None:
        """``still`` go on; the prompts whose last sample row ended are reported done."""
        kept, s = set(still), self.samples
        for r in self.live:
            if r not in kept:
                k = r // s
                self.left[k] -= 1
                if not self.left[k] and self.on_done is not None and report:
                    self.on_done(k, self.out[k * s:(k + 1) * s])
        self.live = still

    def forward(self, tokens: dict[int, int], stats: DecodeStats) -> None:
        """One decode step for the live sample rows' nodes."""
        import torch

        mask, pos, toks = _regroup(self.cache, self.mask, self.pos, self.node_of, self.live,
                                   tokens)
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        kw = {"position_ids": pos.unsqueeze(1)} if self.pass_positions else {}
        x = torch.tensor(toks, device=mask.device).unsqueeze(1)
        self.logits = self.model(input_ids=x, attention_mask=mask, use_cache=True,
                                 **self.ckw, **kw).logits[:, -1].float()
        self.mask, self.pos = mask, pos + 1
        stats.steps += 1
        stats.row_steps += mask.shape[0]

    def refill(self) -> None:
        """Waiting prompts into the places of finished ones (see :func:`decode`)."""
        import torch

        busy = len({r // self.samples for r in self.live})
        free = self.slots - busy
        if self.live and not (self.in_place and free >= max(1, self.slots // REFILL_SHARE)):
            return
        if self.live:
            self.mask, self.pos, self.logits = _compact(self.cache, self.mask, self.pos,
                                                        self.logits, self.node_of, self.live)
            self.mask = _drop_holes(self.cache, self.mask, self.prefix, self.lead)
        new = self.feed(free, self.mask.shape[1] - self.prefix if self.live else None)
        if new is None:
            return
        if self.live:
            kvcache.append_rows(self.cache, new.rows.cache, self.lead)
            self.mask = torch.cat([self.mask, _widen(new.rows.mask, self.prefix,
                                                     self.mask.shape[1])])
            self.pos = torch.cat([self.pos, new.rows.pos])
            self.logits = torch.cat([self.logits, new.rows.logits])
        else:
            self._use(new.rows)
        self.add(new.rows, new.budgets)


def _compact(cache: Any, mask: Any, pos: Any, logits: Any, node_of: list[int],
             live: list[int]) -> tuple[Any, Any, Any]:
    """Keep only the cache rows a live sample row needs (``node_of`` renumbered)."""
    import torch

    keep = sorted({node_of[r] for r in live})
    if len(keep) == mask.shape[0]:
        return mask, pos, logits
    where = {old: new for new, old in enumerate(keep)}
    for r in live:
        node_of[r] = where[node_of[r]]
    kvcache.keep_rows(cache, keep)
    idx = torch.tensor(keep, device=mask.device)
    return mask[idx], pos[idx], logits[idx]


def _drop_holes(cache: Any, mask: Any, prefix: int, lead: int) -> Any:
    """Drop the hole columns after the prefix that every row has (the places of rows that
    left), once they are >= ``MIN_HOLES`` and >= 1/8 of the suffix width; returns the mask."""
    import torch

    width = mask.shape[1] - prefix
    common = int((width - mask[:, prefix:].sum(dim=1)).min())
    if common < max(MIN_HOLES, width // 8) or common <= 0:
        return mask
    kvcache.drop_columns(cache, lead, common)
    return torch.cat([mask[:, :prefix], mask[:, prefix + common:]], dim=1)


def _widen(mask: Any, prefix: int, columns: int) -> Any:
    """A new rows' mask ``[prefix | suffix]`` laid out over ``columns``: prefix first,
    suffix last, holes between."""
    out = mask.new_zeros((mask.shape[0], columns))
    out[:, :prefix] = mask[:, :prefix]
    suffix = mask.shape[1] - prefix
    out[:, columns - suffix:] = mask[:, prefix:]
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
    kw = {"cache": cache} if "cache" in params else {"past_key_values": cache}
    if cascade.is_cascade(cache):
        kw[cascade.KWARG] = cache
    return kw
