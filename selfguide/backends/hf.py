"""The transformers generation backend.

What it does: turns prompts into completions with a loaded causal LM — prompts are rendered
by :func:`render_prompt` (THE prompt format shared with training and evaluation), tokenized
once, sorted by length and cut into batches (a row and a token budget per batch); results
come back in the caller's order. Decoding runs in the backend's own loop
(:mod:`selfguide.backends.decoding`): the longest token prefix shared by a call's prompts
(instruction + demos) is prefilled ONCE and its KV cache reused by every row (prefix
caching; on CPU the prefix's keys are held once and attended by every row,
:mod:`~selfguide.backends.cascade`), the ``n`` samples of a prompt share one cache row
while their tokens agree, and rows that are done (EOS, a stop string, the token
budget) leave the batch so they stop costing compute; with ``refill`` (off by default),
prompts waiting for a later batch take their places instead of waiting for the batch's
longest row. Stop strings cut the text and stop
the row; ``max_new_tokens`` is clamped to the context left after each prompt; ``max_time``,
a cancel flag (checked between batches and during decoding), a per-prompt result callback
and a progress callback are supported. :meth:`score_options` returns the total
log-probability of fixed continuations (shared prefix once, one prefill per prompt).

Switches (for benchmarks and as an escape hatch): ``prefix_cache=False`` (or
``SELFGUIDE_PREFIX_CACHE=0``) prefills every prompt whole; ``decode_loop=False`` (or
``SELFGUIDE_DECODE_LOOP=0``) uses the previous path, ``model.generate`` on left-padded
batches (no prefix caching, finished rows decode until the batch ends); ``refill=True``
(or ``SELFGUIDE_REFILL=1``) turns continuous refill on. A model whose
generation config asks for logits processors the loop does not implement (repetition
penalty, ...) also takes that path. A call that reaches a sliding window (Mistral v0.1,
Gemma 2/3, Phi-3: prompt + new tokens longer than the window) decodes in the own loop with
every prompt prefilled whole (:func:`~selfguide.backends.decoding.prefix_blocker`).
:meth:`HFGenerator.decode_path` says which path a call takes and why.

What it does not do: locate or load models (:mod:`selfguide.models.loading`), or decide prompts.
torch/transformers are imported inside functions; importing this module is cheap.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selfguide import seeding
from selfguide.backends import cascade, hf_generate, scoring
from selfguide.backends.base import CancelFlag, ProgressCallback, ResultCallback
from selfguide.backends.rendering import cut_at_stop, encode_prompt
from selfguide.errors import Cancelled, ConfigError
from selfguide.settings.fields import ModelConfig, SamplingConfig, from_dict

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = {"cpu": 32, "mps": 32, "cuda": 64}
DEFAULT_BATCH_TOKENS = {"cpu": 16384, "mps": 16384, "cuda": 65536}
# KV cache a batch of the own decode loop may need if all its samples diverged
DEFAULT_KV_BYTES = {"cpu": 2 << 30, "mps": 2 << 30, "cuda": 8 << 30}
PREFIX_CACHE_ENV, DECODE_LOOP_ENV = "SELFGUIDE_PREFIX_CACHE", "SELFGUIDE_DECODE_LOOP"
REFILL_ENV = "SELFGUIDE_REFILL"
# generation-config fields the own decode loop does not implement, with their "off" values
_LOOP_OFF = {"repetition_penalty": (None, 1.0), "encoder_repetition_penalty": (None, 1.0),
             "no_repeat_ngram_size": (None, 0), "bad_words_ids": (None,),
             "suppress_tokens": (None,), "begin_suppress_tokens": (None,),
             "forced_bos_token_id": (None,), "forced_eos_token_id": (None,),
             "sequence_bias": (None,), "min_p": (None,), "typical_p": (None, 1.0),
             "epsilon_cutoff": (None, 0.0), "eta_cutoff": (None, 0.0), "min_length": (None, 0),
             "min_new_tokens": (None, 0)}


@dataclass
class _Batch:
    indices: list[int]          # prompt indices, in the caller's numbering
    ids: list[list[int]]        # token ids per prompt (already truncated)


class HFGenerator:
    """Generation + scoring over a transformers causal LM (see module docstring).

    Args:
        model: a loaded ``PreTrainedModel`` (eval mode).
        tokenizer: its tokenizer; a missing pad token is replaced by EOS.
        batch_size: prompts decoded together by the own decode loop (its samples share rows
            while they agree), rows (prompts x samples) on the ``model.generate`` path;
            default 32 on CPU, 64 on CUDA.
        max_batch_tokens: budget of padded prompt tokens per batch (bounds prefill memory).
        info: the :class:`selfguide.models.loading.ModelInfo`, when loaded through ``models``.
        prefix_cache: prefill the prompts' shared prefix once (default on; env
            ``SELFGUIDE_PREFIX_CACHE=0`` turns it off).
        decode_loop: the own decode loop (default on; env ``SELFGUIDE_DECODE_LOOP=0`` or False
            = ``model.generate``, without prefix caching).
        refill: the own loop's continuous refill, waiting prompts taking the places of
            finished ones (default off: batch after batch; env ``SELFGUIDE_REFILL=1`` or
            True = on).
    """

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int | None = None,
                 max_batch_tokens: int | None = None, info: Any = None,
                 prefix_cache: bool | None = None, decode_loop: bool | None = None,
                 refill: bool | None = None):
        from selfguide.models.loading import context_length, prepare_tokenizer

        self.model = model
        self.tokenizer = prepare_tokenizer(tokenizer)
        self.info = info
        self.device = str(next(model.parameters()).device)
        kind = self.device.split(":")[0]
        self.batch_size = int(batch_size or DEFAULT_BATCH_SIZE.get(kind, 32))
        self.max_batch_tokens = int(max_batch_tokens or DEFAULT_BATCH_TOKENS.get(kind, 16384))
        self.max_kv_bytes = DEFAULT_KV_BYTES.get(kind, 2 << 30)
        if self.batch_size < 1 or self.max_batch_tokens < 1:
            raise ConfigError("batch_size and max_batch_tokens must be >= 1.")
        self.context_length = context_length(model, tokenizer)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        # Models with absolute/ALiBi positions (e.g. Bloom) take no position_ids.
        self._pass_positions = "position_ids" in inspect.signature(base.forward).parameters
        self.prefix_cache = _switch(prefix_cache, PREFIX_CACHE_ENV)
        self.decode_loop = _switch(decode_loop, DECODE_LOOP_ENV)
        # off by default: measured on a 2-core CPU it saved decode steps but not time
        # (bench/README, "Continuous refill"); on for anyone who measures a gain
        self.refill = _switch(refill, REFILL_ENV, default=False)
        from selfguide.backends import decoding

        # None: the fast path applies to every call (else to those its reason allows)
        self.prefix_blocker = decoding.prefix_blocker(model, self.context_length)
        self._scanners: dict[tuple[str, ...], Any] = {}
        self.stats: dict[str, Any] = {}
        # One model, one call at a time: concurrent callers (e.g. two studio sessions sharing
        # a cached generator) would only thrash the CPU and clobber ``stats``.
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_loaded(cls, lm: Any, *, batch_size: int | None = None, **kw: Any) -> HFGenerator:
        """Wrap a :class:`selfguide.models.loading.LoadedModel` (``kw``: the switches above)."""
        return cls(lm.model, lm.tokenizer, batch_size=batch_size, info=lm.info, **kw)

    @classmethod
    def from_config(cls, *, config: ModelConfig | None = None, loaded: Any = None,
                    roots: Any = None, batch_size: int | None = None, **kw: Any) -> HFGenerator:
        """The ``hf`` entry of the backend registry: ``backends.get_generator("hf", ...)``.

        Wraps ``loaded`` (a :class:`selfguide.models.loading.LoadedModel`), or loads ``config`` (a
        ``ModelConfig``; else one built from the remaining ``ModelConfig`` fields in ``kw``,
        e.g. ``model=…, precision=…``) with ``roots``. ``kw`` may also carry the switches
        ``prefix_cache``, ``decode_loop`` and ``max_batch_tokens``.
        """
        switches = {k: kw.pop(k) for k in ("prefix_cache", "decode_loop", "max_batch_tokens")
                    if k in kw}
        if loaded is None:
            from selfguide.models.loading import load_model

            loaded = load_model(config or from_dict(ModelConfig, kw), roots=roots)
        return cls.from_loaded(loaded, batch_size=batch_size, **switches)

    # ------------------------------------------------------------------ helpers
    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for src in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(src, int):
                ids.add(src)
            elif src:
                ids.update(int(x) for x in src)
        return ids

    def _encode_all(self, prompts: Sequence[str], chat: bool, max_new_tokens: int
                    ) -> tuple[list[list[int]], int]:
        """Token ids per prompt; prompts that leave no room in the context are cut from the
        left (keeping the end, where the question and generation prompt are)."""
        ctx = self.context_length
        keep = max(1, ctx - max(1, min(max_new_tokens, ctx // 4)))
        out, truncated = [], 0
        for p in prompts:
            ids = encode_prompt(self.tokenizer, p, chat)
            if not ids:  # an empty prompt: start from BOS/EOS so the model has an input
                ids = [self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None
                       else self.tokenizer.pad_token_id]
            if len(ids) >= ctx:
                ids = ids[-keep:]
                truncated += 1
            out.append(ids)
        if truncated:
            log.warning("%d prompt(s) longer than the %d-token context were cut from the left.",
                        truncated, ctx)
        return out, truncated

    def _batches(self, ids: list[list[int]], rows_per_prompt: int,
                 new_tokens: int | None = None) -> list[_Batch]:
        """Length-sorted batches (longest first, so memory trouble shows up at once).

        Given ``new_tokens`` (the own decode loop, whose ``rows_per_prompt`` samples share a
        cache row while they agree): up to ``batch_size`` prompts, bounded by
        ``max_batch_tokens`` prefill tokens and by the KV cache all samples would need if
        every one diverged (``max_kv_bytes``). Else ``batch_size`` rows of
        ``rows_per_prompt`` each, bounded by ``max_batch_tokens`` padded tokens.
        """
        order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
        shared = new_tokens is not None
        max_prompts = self.batch_size if shared else max(
            1, self.batch_size // max(1, rows_per_prompt))
        per_prompt = 1 if shared else rows_per_prompt
        kv_tokens = self._kv_tokens(rows_per_prompt) if shared else 0
        batches: list[_Batch] = []
        cur: list[int] = []
        for i in order:
            width = len(ids[cur[0]]) if cur else len(ids[i])
            n = len(cur) + 1
            if cur and (n > max_prompts or n * width * per_prompt > self.max_batch_tokens
                        or (shared and n * (width + new_tokens) > kv_tokens)):
                batches.append(_Batch(cur, [ids[j] for j in cur]))
                cur = []
            cur.append(i)
        if cur:
            batches.append(_Batch(cur, [ids[j] for j in cur]))
        return batches

    def _kv_tokens(self, rows_per_prompt: int) -> int:
        """Prompt positions (each with ``rows_per_prompt`` sample rows) the KV-cache bound
        ``max_kv_bytes`` holds."""
        return self.max_kv_bytes // (self._kv_bytes_per_token() * rows_per_prompt)

    def _kv_bytes_per_token(self) -> int:
        """Bytes of KV cache one token takes (keys + values of every layer)."""
        from selfguide.backends import decoding

        c = decoding.model_config(self.model)
        c = getattr(c, "text_config", None) or c
        heads = int(getattr(c, "num_attention_heads", 0) or 1)
        kv_heads = int(getattr(c, "num_key_value_heads", 0) or heads)
        head_dim = int(getattr(c, "head_dim", 0) or getattr(c, "hidden_size", 64) // heads)
        layers = int(getattr(c, "num_hidden_layers", 0) or 1)
        dtype = getattr(self.model, "dtype", None)
        size = getattr(dtype, "itemsize", 2) if dtype is not None else 2
        return max(1, 2 * layers * kv_heads * head_dim * size)

    def _pad_left(self, seqs: list[list[int]]):
        import torch

        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    # ------------------------------------------------------------------ generate
    def generate(self, prompts: Sequence[str], sampling: SamplingConfig | None = None, n: int = 1,
                 *, chat: bool = False, on_result: ResultCallback | None = None,
                 progress: ProgressCallback | None = None,
                 cancel: CancelFlag | None = None) -> list[list[str]]:
        """``n`` completions per prompt, in the order of ``prompts`` (see module docstring).

        Greedy decoding (temperature 0) with n > 1 decodes once and returns n copies.
        Raises ``Cancelled`` when ``cancel()`` turns true (completed prompts were already
        delivered through ``on_result``).
        """
        with self._lock:
            return self._generate(list(prompts), sampling or SamplingConfig(), n, chat,
                                  on_result, progress, cancel)

    def _generate(self, prompts: list[str], sampling: SamplingConfig, n: int, chat: bool,
                  on_result: ResultCallback | None, progress: ProgressCallback | None,
                  cancel: CancelFlag | None) -> list[list[str]]:
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"Invalid value for 'n': {n!r} (must be an integer >= 1).")
        results: list[list[str] | None] = [None] * len(prompts)
        if not prompts:
            return []
        t0 = time.monotonic()
        ids, truncated = self._encode_all(prompts, chat, sampling.max_new_tokens)
        decode_n = 1 if sampling.greedy else n
        loop = self._use_loop(sampling)
        batches = self._batches(ids, decode_n, sampling.max_new_tokens if loop else None)
        done = tokens = 0
        span = min(self.context_length, max(map(len, ids)) + sampling.max_new_tokens)
        self.stats = {"batches": len(batches), "truncated_prompts": truncated,
                      "decode_path": self.decode_path(sampling, span)[0],
                      "prefill_seconds": 0.0, "generated_tokens": 0, "seconds": 0.0,
                      "prefix_tokens": 0, "decode_steps": 0, "row_steps": 0}
        if cancel is not None and cancel():
            raise Cancelled(f"Generation cancelled after 0 of {len(prompts)} prompts.")
        t = time.monotonic()
        prefix = self._shared_prefix(ids, span) if loop else None
        self.stats.update(prefill_seconds=time.monotonic() - t,
                          prefix_tokens=prefix.length if prefix is not None else 0)

        def deliver(idx: int, texts: list[str]) -> None:
            nonlocal done
            results[idx] = texts * n if decode_n < n else texts
            done += 1
            if on_result is not None:
                on_result(idx, list(results[idx]))

        if loop and self.refill and len(batches) > 1:
            tokens = self._loop_stream(ids, batches, sampling, decode_n, cancel, prefix,
                                       deliver, progress)
            if cancel is not None and cancel():
                raise Cancelled(f"Generation cancelled after {done} of {len(prompts)} prompts.")
            batches = []
        for b, batch in enumerate(batches):
            if cancel is not None and cancel():
                raise Cancelled(f"Generation cancelled after {done} of {len(prompts)} prompts.")
            if loop:
                texts, ntok = self._loop_batch(batch, sampling, decode_n, cancel, b, prefix)
            else:
                texts, ntok = hf_generate.generate_batch(self, batch, sampling, decode_n,
                                                         cancel, seed_offset=b)
            if cancel is not None and cancel():
                raise Cancelled(f"Generation cancelled after {done} of {len(prompts)} prompts.")
            tokens += ntok
            for k, idx in enumerate(batch.indices):
                deliver(idx, texts[k * decode_n:(k + 1) * decode_n])
            if progress is not None:
                progress(done, len(prompts), tokens)
        self.stats.update(generated_tokens=tokens, seconds=round(time.monotonic() - t0, 4))
        return [r if r is not None else [] for r in results]

    # ------------------------------------------------------------------ own decode loop
    def _use_loop(self, sampling: SamplingConfig) -> bool:
        return self.decode_loop and not self._processors(sampling)

    def _processors(self, sampling: SamplingConfig) -> list[str]:
        """Generation-config fields set that the own decode loop does not implement."""
        gc = hf_generate.generation_config(self, sampling, sampling.max_new_tokens)
        return [k for k, off in _LOOP_OFF.items() if getattr(gc, k, None) not in off]

    def decode_path(self, sampling: SamplingConfig | None = None, span: int | None = None
                    ) -> tuple[str, str]:
        """Which path :meth:`generate` takes, and why, for a call whose prompt + new tokens
        are at most ``span`` tokens (None: up to the context): ``("fast", ...)`` = the own
        decode loop with the shared-prefix KV cache; ``("fallback", why)`` = the own loop
        with every prompt prefilled whole (:func:`~selfguide.backends.decoding.prefix_blocker`:
        e.g. a sliding window the call reaches) or ``model.generate`` (logits processors the
        loop lacks)."""
        from selfguide.backends import decoding

        sampling = sampling or SamplingConfig()
        if not self.decode_loop:
            return "fallback", "model.generate: the own decode loop is switched off"
        if procs := self._processors(sampling):
            return "fallback", "model.generate: the generation config sets " + ", ".join(procs)
        blocker = (decoding.prefix_blocker(self.model, span) if span is not None
                   else self.prefix_blocker)
        if blocker:
            more = ("; calls whose prompt + new tokens fit in the window take the fast path"
                    if span is None and decoding.prefix_blocker(self.model, 1) is None else "")
            return "fallback", f"own decode loop, prompts prefilled whole: {blocker}{more}"
        if not self.prefix_cache:
            return "fallback", "own decode loop, prompts prefilled whole: prefix cache off"
        how = " + cascade attention" if cascade.applies(self.model) else ""
        return "fast", f"own decode loop, shared-prefix KV cache{how}"

    def detected(self, chat: bool = True) -> dict[str, str]:
        """What was detected about the model, label -> text (``selfguide generate --verbose``
        and the studio's Model page): family, chat or base, context, decode path, precision."""
        from selfguide.backends import decoding
        from selfguide.backends.rendering import uses_chat

        cfg = decoding.model_config(self.model)
        arch = ", ".join(getattr(cfg, "architectures", None) or []) or type(self.model).__name__
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        prompts = ("chat: the model's chat template" if uses_chat(self.tokenizer, chat)
                   else "base: plain text (no chat template)" if not has_template
                   else "plain text (chat off)")
        path, why = self.decode_path()
        info = self.info
        precision = f"{info.precision} ({info.dtype})" if info is not None else str(
            getattr(self.model, "dtype", "?")).replace("torch.", "")
        return {"family": f"{getattr(cfg, 'model_type', '?')} ({arch})", "prompts": prompts,
                "context": f"{self.context_length} tokens", "decode path": f"{path}: {why}",
                "precision": f"{precision} on {self.device}"}

    def _shared_prefix(self, ids: list[list[int]], span: int) -> Any:
        """The KV cache of the prompts' longest common token prefix (None: none, off, or
        not exact for sequences up to ``span`` tokens: ``decoding.prefix_blocker``)."""
        import torch

        from selfguide.backends import decoding

        p = decoding.usable_prefix(ids) if self.prefix_cache else 0
        if not p or decoding.prefix_blocker(self.model, span):
            return None
        with torch.inference_mode():
            return decoding.build_prefix(self.model, ids[0][:p], self.device,
                                         self._pass_positions, plain=True)

    def _loop_batch(self, batch: _Batch, sampling: SamplingConfig, n: int,
                    cancel: CancelFlag | None, seed_offset: int, prefix: Any = None
                    ) -> tuple[list[str], int]:
        """One batch through :mod:`~selfguide.backends.decoding`: texts (n per prompt, in
        batch order) and the number of generated tokens."""
        import torch

        from selfguide.backends import decoding

        budgets = [max(1, min(sampling.max_new_tokens, self.context_length - len(s)))
                   for s in batch.ids for _ in range(n)]
        pick = decoding.token_picker(sampling.greedy, sampling.temperature, sampling.top_k,
                                     sampling.top_p)
        dstats = decoding.DecodeStats()
        with torch.inference_mode(), cascade.enabled(self.model), \
                seeding.seeded(sampling.seed + seed_offset, self.device):
            t = time.monotonic()
            rows = decoding.prefill(self.model, batch.ids, prefix, self.tokenizer.pad_token_id,
                                    self.device, self._pass_positions, room=max(budgets),
                                    samples=n)
            self.stats["prefill_seconds"] = self.stats.get("prefill_seconds", 0.0) + (
                time.monotonic() - t)
            out = decoding.decode(self.model, rows, budgets, pick=pick, eos=self.eos_ids,
                                  stop=self._scanner(sampling.stop), cancel=cancel,
                                  max_time=sampling.max_time,
                                  pass_positions=self._pass_positions, stats=dstats,
                                  samples=n, stop_loops=sampling.stop_loops)
        self.stats["decode_steps"] = self.stats.get("decode_steps", 0) + dstats.steps
        self.stats["row_steps"] = self.stats.get("row_steps", 0) + dstats.row_steps
        texts = [cut_at_stop(self.tokenizer.decode(r, skip_special_tokens=True), sampling.stop)
                 for r in out]
        return texts, sum(len(r) for r in out)

    def _loop_stream(self, ids: list[list[int]], batches: list[_Batch],
                     sampling: SamplingConfig, n: int, cancel: CancelFlag | None,
                     prefix: Any, deliver: Any, progress: ProgressCallback | None) -> int:
        """All batches through one decode with continuous refill
        (:func:`~selfguide.backends.decoding.decode` with a ``feed``): the first batch is
        prefilled as usual; later prompts (longest first) are prefilled as places free up,
        within the batch's prompt count, ``max_batch_tokens`` and the KV-cache bound.
        Each prompt's texts go to ``deliver`` as it finishes. Returns the tokens generated."""
        import torch

        from selfguide.backends import decoding

        order = list(batches[0].indices)                     # decode's prompt numbering
        feeder = _Feeder(self, ids, [i for b in batches[1:] for i in b.indices], order,
                         sampling, n, cancel, prefix)
        counts = {"tokens": 0, "done": 0, "told": 0.0}

        def on_done(k: int, toks: list[list[int]]) -> None:
            deliver(order[k], [cut_at_stop(self.tokenizer.decode(r, skip_special_tokens=True),
                                           sampling.stop) for r in toks])
            counts["tokens"] += sum(len(r) for r in toks)
            counts["done"] += 1
            now = time.monotonic()
            if progress is not None and (now - counts["told"] >= 0.25
                                         or counts["done"] == len(ids)):
                counts["told"] = now
                progress(counts["done"], len(ids), counts["tokens"])

        pick = decoding.token_picker(sampling.greedy, sampling.temperature, sampling.top_k,
                                     sampling.top_p)
        dstats = decoding.DecodeStats()
        with torch.inference_mode(), cascade.enabled(self.model), \
                seeding.seeded(sampling.seed, self.device):
            decoding.decode(self.model, feeder.prefill(order), feeder.budgets(order),
                            pick=pick, eos=self.eos_ids, stop=self._scanner(sampling.stop),
                            cancel=cancel, max_time=sampling.max_time,
                            pass_positions=self._pass_positions, stats=dstats, samples=n,
                            stop_loops=sampling.stop_loops, feed=feeder, slots=len(order),
                            on_done=on_done)
        self.stats.update(batches=feeder.prefills,
                          decode_steps=self.stats.get("decode_steps", 0) + dstats.steps,
                          row_steps=self.stats.get("row_steps", 0) + dstats.row_steps)
        return counts["tokens"]

    def _scanner(self, stop: tuple[str, ...]) -> Any:
        """A (cached) :class:`~selfguide.backends.decoding.StopScanner` for ``stop``."""
        from selfguide.backends import decoding

        stop = tuple(s for s in stop if s)
        if not stop:
            return None
        if stop not in self._scanners:
            vocab = int(decoding.model_config(self.model).vocab_size)
            self._scanners[stop] = decoding.StopScanner(self.tokenizer, stop, vocab, self.device)
        return self._scanners[stop]

    def _positions(self, pos: Any) -> dict:
        return {"position_ids": pos} if self._pass_positions else {}

    # ------------------------------------------------------------------ scoring
    def score_options(self, prompts: Sequence[str], options: Sequence[str], *,
                      chat: bool = False) -> list[list[float]]:
        """Total log-probability (natural log) of each option continuing each rendered prompt.

        Options are tokenized on their own (no special tokens) and appended to the prompt's
        ids; an empty option scores 0.0. Each prompt is prefilled once for all options.
        """

        prompts, options = list(prompts), list(options)
        if not prompts or not options:
            return [[] for _ in prompts]
        with self._lock:
            return scoring.score(self, prompts, options, chat)


class _Feeder:
    """The ``feed`` of :meth:`HFGenerator._loop_stream`: takes waiting prompts (longest
    first) that fit the places and positions a running decode offers, prefills them and
    hands them over (:class:`~selfguide.backends.decoding.Feed`)."""

    def __init__(self, gen: HFGenerator, ids: list[list[int]], queue: list[int],
                 order: list[int], sampling: SamplingConfig, n: int,
                 cancel: CancelFlag | None, prefix: Any):
        self.gen, self.ids, self.queue, self.order = gen, ids, queue, order
        self.sampling, self.n, self.cancel, self.prefix = sampling, n, cancel, prefix
        self.p = prefix.length if prefix is not None else 0
        self.slots = len(order)
        self.kv_tokens = gen._kv_tokens(n)
        self.prefills = 0

    def budgets(self, take: list[int]) -> list[int]:
        """Token budget per sample row: ``max_new_tokens``, within the context."""
        ctx, new = self.gen.context_length, self.sampling.max_new_tokens
        return [max(1, min(new, ctx - len(self.ids[i]))) for i in take for _ in range(self.n)]

    def prefill(self, take: list[int]) -> Any:
        from selfguide.backends import decoding

        g, t = self.gen, time.monotonic()
        rows = decoding.prefill(g.model, [self.ids[i] for i in take], self.prefix,
                                g.tokenizer.pad_token_id, g.device, g._pass_positions,
                                room=max(self.budgets(take)), samples=self.n)
        g.stats["prefill_seconds"] = g.stats.get("prefill_seconds", 0.0) + (
            time.monotonic() - t)
        self.prefills += 1
        return rows

    def __call__(self, free: int, width: int | None) -> Any:
        from selfguide.backends import decoding

        if self.cancel is not None and self.cancel():
            return None
        take: list[int] = []
        while self.queue and len(take) < free:
            w = len(self.ids[self.queue[0]]) - self.p
            widest = max([w] + [len(self.ids[i]) - self.p for i in take])
            span = (width if width is not None else widest) + self.p + \
                self.sampling.max_new_tokens
            over = (len(take) + 1) * widest > self.gen.max_batch_tokens or \
                (self.slots - free + len(take) + 1) * span > self.kv_tokens
            # a prompt over the bounds alone still goes, once nothing else is running
            if (width is not None and (w > width or over)) or (take and over):
                break
            take.append(self.queue.pop(0))
        if not take:
            return None
        self.order.extend(take)
        return decoding.Feed(self.prefill(take), self.budgets(take))


def _switch(value: bool | None, env: str, default: bool = True) -> bool:
    """An on/off switch: the explicit value, else the environment (``0``/``false``/``off``
    = off), else ``default``."""
    if value is not None:
        return bool(value)
    return os.environ.get(env, "1" if default else "0").strip().lower() not in (
        "0", "false", "off", "no")
