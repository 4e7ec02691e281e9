"""Option scoring for the transformers backend: log-probabilities of fixed continuations.

What it does: :func:`score` returns the total log-probability (natural log) of each option
continuing each rendered prompt — the prompts' shared prefix prefilled once, one prefill
per prompt for all its options (used by calibrated labelling and label-constrained
classification).

What it does not do: tokenize prompts or batch them (:class:`~selfguide.backends.hf.HFGenerator`
does, and passes itself as ``gen``). torch is imported inside functions.
"""

from __future__ import annotations

from typing import Any

from selfguide.backends import cascade


def score(gen: Any, prompts: list[str], options: list[str], chat: bool) -> list[list[float]]:
    import torch

    opt_ids = [list(gen.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in options]
    longest = max(len(o) for o in opt_ids)
    ids, _ = gen._encode_all(prompts, chat, max(1, longest))
    ids = [p[-max(1, gen.context_length - longest):] for p in ids]
    scores: list[list[float]] = [[0.0] * len(options) for _ in prompts]
    if longest == 0:
        return scores
    with torch.inference_mode(), cascade.enabled(gen.model):
        prefix = gen._shared_prefix(ids, max(map(len, ids)) + longest)
        for batch in gen._batches(ids, len(options)):
            block = _score_batch(gen, batch, opt_ids, prefix)
            for k, idx in enumerate(batch.indices):
                scores[idx] = block[k]
    return scores

def _score_batch(gen: Any, batch: Any, opt_ids: list[list[int]], prefix: Any = None
                 ) -> list[list[float]]:
    import torch

    from selfguide.backends import decoding

    k_opts = len(opt_ids)
    rows = decoding.prefill(gen.model, batch.ids, prefix, gen.tokenizer.pad_token_id,
                            gen.device, gen._pass_positions,
                            room=max(len(o) for o in opt_ids))
    cache, mask, n_p = rows.cache, rows.mask, rows.mask.shape[0]
    first_lp = torch.log_softmax(rows.logits, dim=-1)                 # [P, V]
    width_o = max(len(o) for o in opt_ids)
    pad = gen.tokenizer.pad_token_id
    o_ids = torch.full((k_opts, width_o), pad, dtype=torch.long)
    o_mask = torch.zeros((k_opts, width_o), dtype=torch.long)
    for j, o in enumerate(opt_ids):
        if o:
            o_ids[j, :len(o)] = torch.tensor(o)
            o_mask[j, :len(o)] = 1
    o_ids, o_mask = o_ids.to(gen.device), o_mask.to(gen.device)
    out = [[0.0] * k_opts for _ in range(n_p)]
    for j, o in enumerate(opt_ids):  # first option token, predicted by the prompt's last
        if o:
            for r in range(n_p):
                out[r][j] = float(first_lp[r, o[0]])
    if width_o < 2:
        return out
    cache.batch_repeat_interleave(k_opts)
    rows_ids = o_ids.repeat(n_p, 1)                                   # [P*K, W]
    rows_mask = torch.cat([mask.repeat_interleave(k_opts, 0), o_mask.repeat(n_p, 1)], dim=1)
    start = rows.pos.repeat_interleave(k_opts).unsqueeze(1)            # prompt lengths
    rows_pos = start + torch.arange(width_o, device=gen.device).unsqueeze(0)
    logits = gen.model(input_ids=rows_ids, attention_mask=rows_mask, use_cache=True,
                       **decoding.cache_kw(gen.model, cache),
                       **gen._positions(rows_pos)).logits[:, :-1]
    lp = torch.log_softmax(logits.float(), dim=-1)
    target = rows_ids[:, 1:]
    tok_lp = lp.gather(-1, target.unsqueeze(-1)).squeeze(-1) * o_mask.repeat(n_p, 1)[:, 1:]
    rest = tok_lp.sum(dim=1).view(n_p, k_opts)
    for r in range(n_p):
        for j in range(k_opts):
            out[r][j] += float(rest[r, j])
    return out
