"""The ``model.generate`` path of the transformers backend (the escape hatch).

What it does: decodes a left-padded batch with transformers' ``generate`` — one prefill
shared by the ``n`` samples of a prompt, stop strings and a cancel flag as stopping
criteria — for models whose generation config asks for logits processors the own loop
(:mod:`selfguide.backends.decoding`) does not implement, or when ``decode_loop=False``.

What it does not do: batch, tokenize or order prompts (:class:`~selfguide.backends.hf.HFGenerator`
does, and passes itself as ``gen``). torch/transformers are imported inside functions.
"""

from __future__ import annotations

import time
from typing import Any

from selfguide import seeding
from selfguide.backends.base import CancelFlag
from selfguide.backends.rendering import cut_at_stop
from selfguide.settings.fields import SamplingConfig


def generation_config(gen: Any, sampling: SamplingConfig, max_new_tokens: int) -> Any:
    import copy

    gc = copy.deepcopy(gen.model.generation_config)
    gc.max_new_tokens = max_new_tokens
    gc.max_length = None
    gc.min_new_tokens = None
    gc.num_return_sequences = 1
    gc.num_beams = 1
    gc.pad_token_id = gen.tokenizer.pad_token_id
    gc.eos_token_id = sorted(gen.eos_ids) or None
    gc.max_time = sampling.max_time
    if sampling.greedy:
        gc.do_sample = False
        gc.temperature, gc.top_p, gc.top_k = None, None, None
    else:
        gc.do_sample = True
        gc.temperature = sampling.temperature
        gc.top_p = sampling.top_p
        gc.top_k = sampling.top_k or None
    return gc


def generate_batch(gen: Any, batch: Any, sampling: SamplingConfig, n: int,
                   cancel: CancelFlag | None, seed_offset: int) -> tuple[list[str], int]:
    import torch
    from transformers import StoppingCriteriaList

    input_ids, mask = gen._pad_left(batch.ids)
    width = input_ids.shape[1]
    # _encode_all leaves room for >= 1 new token; max() is only a guard
    max_new = max(1, min(sampling.max_new_tokens, gen.context_length - width))
    gc = generation_config(gen, sampling, max_new)
    stop = _stop_strings(gen.tokenizer, sampling.stop, width)
    criteria = StoppingCriteriaList([c for c in (stop, _cancel_criteria(cancel)) if c])
    kwargs: dict[str, Any] = {}
    with torch.inference_mode(), seeding.seeded(sampling.seed + seed_offset, gen.device):
        if n > 1 and width > 1:
            # One prefill for the n samples: run all but the last prompt token once,
            # repeat the cache n times, and let generate continue from it.
            t = time.monotonic()
            cache = _prefill(gen, input_ids[:, :-1], mask[:, :-1])
            cache.batch_repeat_interleave(n)
            gen.stats["prefill_seconds"] = gen.stats.get("prefill_seconds", 0.0) + (
                time.monotonic() - t)
            kwargs["past_key_values"] = cache
            input_ids = input_ids.repeat_interleave(n, dim=0)
            mask = mask.repeat_interleave(n, dim=0)
        elif n > 1:
            input_ids = input_ids.repeat_interleave(n, dim=0)
            mask = mask.repeat_interleave(n, dim=0)
        out = gen.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=gc,
                                 stopping_criteria=criteria, **kwargs)
    return decode_new(gen, out[:, width:], sampling.stop)


def _prefill(gen: Any, ids: Any, mask: Any) -> Any:
    from transformers import DynamicCache

    cache = DynamicCache(config=gen.model.config)
    gen.model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True,
              logits_to_keep=1, **gen._positions(_position_ids(mask)))
    return cache

def decode_new(gen: Any, new_tokens: Any, stop: tuple[str, ...]) -> tuple[list[str], int]:
    eos = gen.eos_ids
    texts, count = [], 0
    for row in new_tokens.tolist():
        cut = next((j for j, t in enumerate(row) if t in eos), len(row))
        row = row[:cut]
        text = gen.tokenizer.decode(row, skip_special_tokens=True)
        texts.append(cut_at_stop(text, stop))
        count += len(row) - _trailing(row, gen.tokenizer.pad_token_id)
    return texts, count


def _stop_strings(tokenizer: Any, stop: tuple[str, ...], prompt_width: int) -> Any:
    stop = tuple(s for s in stop if s)
    return _stop_string_criteria(tokenizer, stop, prompt_width) if stop else None


def _trailing(row: list[int], pad: int | None) -> int:
    k = 0
    for t in reversed(row):
        if t != pad:
            break
        k += 1
    return k


def _position_ids(mask: Any) -> Any:
    """Positions for a left-padded batch, as ``generate`` computes them."""
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 0)


def _stop_string_criteria(tokenizer: Any, stop: tuple[str, ...], prompt_width: int) -> Any:
    """A stopping criterion: a row is done once its generated text contains a stop string.

    Only the last few generated tokens are decoded each step (enough to cover the longest
    stop string), so the cost does not grow with the completion. transformers'
    ``StopStringCriteria`` is not used: it assumes tokenizer vocabularies it can clean and
    fails on others (e.g. WordLevel).
    """
    import torch
    from transformers import StoppingCriteria

    window = max(len(s) for s in stop) + 8

    class _Stop(StoppingCriteria):
        def __init__(self):
            self.done: torch.Tensor | None = None

        def __call__(self, input_ids, scores, **kwargs):
            rows = input_ids.shape[0]
            if self.done is None or self.done.shape[0] != rows:
                self.done = torch.zeros(rows, dtype=torch.bool, device=input_ids.device)
            new = input_ids[:, prompt_width:]
            if new.shape[1] == 0:
                return self.done.clone()
            tails = new[:, -window:].tolist()
            for r in range(rows):
                if not self.done[r]:
                    text = tokenizer.decode(tails[r], skip_special_tokens=True)
                    if any(s in text for s in stop):
                        self.done[r] = True
            return self.done.clone()

    return _Stop()


def _cancel_criteria(cancel: CancelFlag | None) -> Any:
    """Stop decoding every row once ``cancel()`` is true (polled at most every 0.2 s)."""
    if cancel is None:
        return None
    import torch
    from transformers import StoppingCriteria

    class _Cancel(StoppingCriteria):
        last = 0.0

        def __call__(self, input_ids, scores, **kwargs):
            now = time.monotonic()
            flag = False
            if now - self.last >= 0.2:
                self.last = now
                flag = bool(cancel())
            return torch.full((input_ids.shape[0],), flag, dtype=torch.bool,
                              device=input_ids.device)

    return _Cancel()
