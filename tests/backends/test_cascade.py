"""Cascade attention (:mod:`selfguide.backends.cascade`): the shared prefix's keys held once
and attended by every row gives the attention of the concatenated keys (unit test against
torch's attention, GQA, holes, causal suffixes), and the decode loop with it gives the same
greedy outputs, samples and option scores as with the prefix copied into every row."""

from __future__ import annotations

import pytest

from selfguide.backends import cascade
from selfguide.backends.hf import HFGenerator
from selfguide.settings.fields import ModelConfig, SamplingConfig

HEAD = ("paraphrase the question with other words . answer : positive negative neutral\n\n"
        "input : the cat sat on the mat\noutput : positive\n\n"
        "input : this film was bad and boring\noutput : negative\n\n")
INPUTS = ["a dog ran in the park", "this movie was great and fun fun great",
          "what is the best way", "the cat", "hello world how are you today is the best way"]
PROMPTS = [HEAD + f"input : {x}\noutput :" for x in INPUTS]


def _reference(query, pk, pv, key, value, mask):
    """torch's attention over [prefix; suffix] keys, key/value heads repeated (as
    transformers' repeat_kv does) and the prefix always visible."""
    import torch

    b, h, q, _ = query.shape
    g = h // pk.shape[0]
    k = torch.cat([pk.unsqueeze(0).expand(b, -1, -1, -1), key], dim=2).repeat_interleave(g, 1)
    v = torch.cat([pv.unsqueeze(0).expand(b, -1, -1, -1), value], dim=2).repeat_interleave(g, 1)
    out = torch.nn.functional.scaled_dot_product_attention(query, k, v, attn_mask=mask,
                                                           scale=0.125)
    return out.transpose(1, 2)


@pytest.mark.parametrize("q, heads, kv_heads, holes", [
    (1, 9, 3, True), (1, 9, 3, False), (5, 9, 3, True), (5, 4, 4, False), (3, 4, 2, True)])
def test_merged_equals_attention_over_the_concatenated_keys(q, heads, kv_heads, holes):
    import torch

    torch.manual_seed(0)
    b, p, s, d = 3, 11, 7, 64
    query = torch.randn(b, heads, q, d)
    pk, pv = torch.randn(kv_heads, p, d), torch.randn(kv_heads, p, d)
    key, value = torch.randn(b, kv_heads, s, d), torch.randn(b, kv_heads, s, d)
    causal = torch.ones(q, s, dtype=torch.bool).tril(s - q)          # last q keys are new
    full = torch.cat([torch.ones(q, p, dtype=torch.bool), causal], 1).expand(b, 1, q, p + s)
    full = full.clone()
    if holes:  # row 1 has two holes, row 2 one, right after the prefix
        full[1, :, :, p:p + 2] = False
        full[2, :, :, p] = False
    mask = full if holes else None
    got = cascade.merged(query, key, value, mask, pk, pv, 0.125)
    want = _reference(query, pk, pv, key, value, full)
    assert got.shape == (b, q, heads, d)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    bf = cascade.merged(query.bfloat16(), key.bfloat16(), value.bfloat16(), mask,
                        pk.bfloat16(), pv.bfloat16(), 0.125)
    assert bf.dtype == torch.bfloat16
    assert (bf.float() - want).abs().max() < 3e-2


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    from selfguide.models.loading import load_model

    return load_model(ModelConfig(model=str(tiny_model_dir), precision="fp32"))


def _count_merges(monkeypatch) -> list[int]:
    calls = []
    real = cascade.merged

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(cascade, "merged", counting)
    return calls


def test_decode_with_cascade_equals_the_prefix_copied_into_every_row(lm, monkeypatch):
    assert lm.model.config._attn_implementation == "sdpa"
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=10)
    sampled = SamplingConfig(temperature=0.8, top_p=0.9, max_new_tokens=10, seed=3)
    monkeypatch.setenv(cascade.ENV, "0")
    off = HFGenerator(lm.model, lm.tokenizer, batch_size=2)
    want = (off.generate(PROMPTS, greedy, n=2), off.generate(PROMPTS, sampled, n=3),
            off.score_options(PROMPTS, ["positive", "negative", "a b c"]))
    monkeypatch.delenv(cascade.ENV)
    calls = _count_merges(monkeypatch)
    on = HFGenerator(lm.model, lm.tokenizer, batch_size=2)
    got = (on.generate(PROMPTS, greedy, n=2), on.generate(PROMPTS, sampled, n=3),
           on.score_options(PROMPTS, ["positive", "negative", "a b c"]))
    assert calls, "the cascade path was not taken"
    assert got[0] == want[0] and got[1] == want[1]
    for a, b in zip(got[2], want[2]):
        assert a == pytest.approx(b, abs=1e-4)
    assert lm.model.config._attn_implementation == "sdpa"  # restored after each call


def test_the_implementation_is_restored_after_an_error_and_other_forwards_are_plain(lm):
    import torch

    cfg = lm.model.config
    with pytest.raises(RuntimeError):
        with cascade.enabled(lm.model) as on:
            assert on and cfg._attn_implementation == cascade.NAME
            ids = torch.tensor([[1, 2, 3, 4]])
            inside = lm.model(input_ids=ids).logits     # no cascade cache: plain sdpa
            raise RuntimeError("boom")
    assert cfg._attn_implementation == "sdpa"
    assert torch.equal(inside, lm.model(input_ids=ids).logits)


def test_no_cascade_for_other_attention_implementations(lm, monkeypatch):
    calls = _count_merges(monkeypatch)
    s = SamplingConfig(temperature=0.0, max_new_tokens=6)
    want = HFGenerator(lm.model, lm.tokenizer).generate(PROMPTS, s)
    calls.clear()
    lm.model.config._attn_implementation = "eager"
    try:
        with cascade.enabled(lm.model) as on:
            assert not on
        assert HFGenerator(lm.model, lm.tokenizer).generate(PROMPTS, s) == want
    finally:
        lm.model.config._attn_implementation = "sdpa"
    assert not calls


@pytest.mark.parametrize("heads, kv_heads", [(9, 3), (4, 4)])
def test_a_prefill_attends_per_row_exactly_as_the_masked_merge(heads, kv_heads):
    """merged_fresh (a prefill: causal per row over its real tokens, holes first, no mask)
    equals the attention over [prefix; suffix] with the batch's causal + hole mask on every
    real token; the holes' outputs are zeros."""
    import torch

    torch.manual_seed(1)
    b, p, s, d = 3, 5, 9, 64
    lengths = [9, 4, 1]
    query = torch.randn(b, heads, s, d)
    pk, pv = torch.randn(kv_heads, p, d), torch.randn(kv_heads, p, d)
    key, value = torch.randn(b, kv_heads, s, d), torch.randn(b, kv_heads, s, d)
    causal = torch.ones(s, s, dtype=torch.bool).tril()
    full = torch.cat([torch.ones(s, p, dtype=torch.bool), causal], 1).repeat(b, 1, 1, 1)
    for r, n in enumerate(lengths):
        full[r, :, :, p:p + s - n] = False
    got = cascade.merged_fresh(query, key, value, lengths, pk, pv, 0.125)
    want = _reference(query, pk, pv, key, value, full)
    for r, n in enumerate(lengths):
        assert torch.allclose(got[r, s - n:], want[r, s - n:], atol=1e-5)
        assert not got[r, :s - n].any()
