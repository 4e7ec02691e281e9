"""The transformers backend on the tiny Llama: batching, shared prefill, sampling, stop
strings, cancel, streaming, context clamps, option scoring, and the ``generate`` command."""

from __future__ import annotations

import json

import pytest

from selfguide.backends import hf_generate
from selfguide.backends.hf import HFGenerator, _Batch
from selfguide.backends.rendering import cut_at_stop, encode_prompt, render_prompt
from selfguide.errors import Cancelled, ConfigError
from selfguide.settings.fields import ModelConfig, SamplingConfig

PROMPTS = ["the cat sat on the mat", "a dog", "what is the best way to learn python today",
           "hello world how are", "this movie was great"]


@pytest.fixture(scope="module")
def gen(tiny_model_dir) -> HFGenerator:
    from selfguide.backends import get_generator

    return get_generator("hf", config=ModelConfig(model=str(tiny_model_dir), precision="fp32"),
                         batch_size=4)


def _alone(gen: HFGenerator, prompt: str, max_new: int, chat: bool = False) -> str:
    """Greedy decode of one prompt with plain ``model.generate`` (no padding, no batching)."""
    import torch

    ids = torch.tensor([encode_prompt(gen.tokenizer, prompt, chat)])
    out = gen.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new, pad_token_id=gen.tokenizer.pad_token_id)
    return hf_generate.decode_new(gen, out[:, ids.shape[1]:], ())[0][0]


def test_render_prompt_uses_the_chat_template_only_when_asked(gen):
    chat = render_prompt(gen.tokenizer, "the cat", True)
    assert chat.startswith("<|user|> the cat") and chat.endswith("<|assistant|>")
    assert render_prompt(gen.tokenizer, "the cat", False) == "the cat"


def test_render_prompt_without_template(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir, trust_remote_code=False)
    tok.chat_template = None
    assert render_prompt(tok, "the cat", True) == "the cat"


def test_greedy_batched_equals_each_prompt_alone_in_order(gen):
    """Left padding, length sorting and order restoration do not change any output."""
    out = gen.generate(PROMPTS, SamplingConfig(temperature=0.0, max_new_tokens=8), chat=True)
    assert gen.stats["batches"] == 2  # 5 prompts, batch_size 4
    assert [o[0] for o in out] == [_alone(gen, p, 8, chat=True) for p in PROMPTS]


def test_shared_prefill_continues_exactly_like_a_full_decode(gen):
    """The n-sample path (prefill once, repeat the cache) = plain greedy decoding."""
    ids = [encode_prompt(gen.tokenizer, p, False) for p in PROMPTS[:3]]
    texts, _ = hf_generate.generate_batch(gen, _Batch([0, 1, 2], ids), SamplingConfig(
        temperature=0.0, max_new_tokens=8), 3, None, 0)
    expected = [_alone(gen, p, 8) for p in PROMPTS[:3]]
    assert texts == [e for e in expected for _ in range(3)]
    assert gen.stats is not None


def test_n_samples_per_prompt_share_one_prefill(gen, monkeypatch):
    from selfguide.backends import decoding

    calls = []
    real = decoding.prefill

    def spy(model, seqs, prefix, *a, **kw):
        calls.append(len(seqs))
        return real(model, seqs, prefix, *a, **kw)

    monkeypatch.setattr(decoding, "prefill", spy)
    out = gen.generate(PROMPTS[:2], SamplingConfig(temperature=1.0, max_new_tokens=6, seed=1), n=2)
    assert [len(o) for o in out] == [2, 2]
    assert calls == [2]  # one prefill of 2 prompt rows, not 4


def _count_batches(monkeypatch, log: list, label="batch"):
    """Record ``label`` in ``log`` each time a batch is prefilled (one per batch)."""
    from selfguide.backends import decoding

    real = decoding.prefill

    def counting(*a, **kw):
        log.append(label)
        return real(*a, **kw)

    monkeypatch.setattr(decoding, "prefill", counting)


def test_n_completions_differ_and_seed_reproduces(gen):
    s = SamplingConfig(temperature=1.5, max_new_tokens=8, seed=7)
    a = gen.generate(PROMPTS[:3], s, n=4)
    assert [len(o) for o in a] == [4, 4, 4]
    assert all(len(set(o)) > 1 for o in a)  # real samples, not copies
    assert gen.generate(PROMPTS[:3], s, n=4) == a
    b = gen.generate(PROMPTS[:3], SamplingConfig(temperature=1.5, max_new_tokens=8, seed=8), n=4)
    assert b != a


def test_greedy_with_n_returns_copies(gen):
    out = gen.generate(PROMPTS[:2], SamplingConfig(temperature=0.0, max_new_tokens=5), n=3)
    assert all(len(o) == 3 and len(set(o)) == 1 for o in out)


def test_top_k_one_is_greedy(gen):
    greedy = gen.generate(PROMPTS[:2], SamplingConfig(temperature=0.0, max_new_tokens=6))
    top1 = gen.generate(PROMPTS[:2], SamplingConfig(temperature=1.0, top_k=1, max_new_tokens=6,
                                                    seed=3), n=2)
    assert [o[0] for o in top1] == [o[0] for o in greedy] == [o[1] for o in top1]


def test_stop_strings_cut_text_and_stop_decoding(gen):
    s = SamplingConfig(temperature=1.0, max_new_tokens=40, seed=5)
    [[full]] = gen.generate([PROMPTS[0]], s)
    full_tokens = gen.stats["generated_tokens"]
    words = full.split()
    assert len(words) >= 6, full
    stop = words[3]
    # same seed, same batch: the same tokens up to the stop string
    [[cut]] = gen.generate([PROMPTS[0]], SamplingConfig(temperature=1.0, max_new_tokens=40, seed=5,
                                                       stop=(stop, "zzz-never")))
    assert cut == full[:full.index(stop)]
    assert stop not in cut
    assert gen.stats["generated_tokens"] < full_tokens  # decoding stopped early


def test_cut_at_stop_takes_the_earliest():
    assert cut_at_stop("a b\n\nc ### d", ("###", "\n\n")) == "a b"
    assert cut_at_stop("abc", ("", "x")) == "abc"


def test_cancel_between_batches(gen, monkeypatch):
    flag = {"cancel": False}
    seen = []
    calls = []
    _count_batches(monkeypatch, calls)

    def on_result(i, comps):
        seen.append(i)
        flag["cancel"] = True  # user presses Stop after the first batch

    g = HFGenerator(gen.model, gen.tokenizer, batch_size=2)
    with pytest.raises(Cancelled):
        g.generate(PROMPTS, SamplingConfig(max_new_tokens=4), on_result=on_result,
                   cancel=lambda: flag["cancel"])
    assert len(calls) == 1 and len(seen) == 2  # the first batch finished and was delivered
    with pytest.raises(Cancelled):
        g.generate(PROMPTS, SamplingConfig(max_new_tokens=4), cancel=lambda: True)
    assert len(calls) == 1  # cancelled before any model call


def test_on_result_streams_each_prompt_before_the_next_batch(gen, monkeypatch):
    """Batch after batch (refill off): a batch's results come before the next prefill."""
    events = []
    _count_batches(monkeypatch, events, "generate")
    g = HFGenerator(gen.model, gen.tokenizer, batch_size=2)  # refill off: the default
    results = {}

    def on_result(i, comps):
        events.append(f"result {i}")
        results[i] = comps

    progress = []
    out = g.generate(PROMPTS, SamplingConfig(max_new_tokens=4, seed=2), n=1, on_result=on_result,
                     progress=lambda d, t, tok: progress.append((d, t, tok)))
    assert events[0] == "generate" and events[1].startswith("result")
    assert events.count("generate") == 3
    first_batch = events[1:events.index("generate", 1)]
    assert len(first_batch) == 2  # results delivered before the second batch starts
    assert results == {i: o for i, o in enumerate(out)}
    assert [p[0] for p in progress] == [2, 4, 5] and progress[-1][1] == 5
    assert progress[-1][2] == gen_tokens(g) > 0


def test_refill_streams_each_prompt_as_it_finishes_and_equals_batch_after_batch(gen,
                                                                               monkeypatch):
    """Continuous refill: a finished prompt is delivered at once and a waiting prompt is
    prefilled into its place while the others still decode; outputs equal batch after
    batch (greedy), every prompt delivered once, progress ends at all prompts."""
    s = SamplingConfig(temperature=0.0, max_new_tokens=12)
    prompts = [p + " " + "x" * k for k, p in enumerate((PROMPTS * 2)[:7])]
    want = HFGenerator(gen.model, gen.tokenizer, batch_size=3, refill=False).generate(prompts, s)
    events = []
    _count_batches(monkeypatch, events, "prefill")
    g = HFGenerator(gen.model, gen.tokenizer, batch_size=3, refill=True)
    results, progress = {}, []

    def on_result(i, comps):
        events.append("result")
        results[i] = comps

    got = g.generate(prompts, s, on_result=on_result,
                     progress=lambda d, t, tok: progress.append((d, t, tok)))
    assert got == want and results == dict(enumerate(got))
    assert events.index("result") < events.index("prefill", 1)  # delivered before refilling
    assert events.count("prefill") == g.stats["batches"] >= 3
    assert progress[-1][:2] == (7, 7) and progress[-1][2] == g.stats["generated_tokens"] > 0


def gen_tokens(g: HFGenerator) -> int:
    return g.stats["generated_tokens"]


def test_max_new_tokens_is_clamped_to_the_context(gen):
    ctx = gen.context_length  # 256
    long_prompt = " ".join(["the cat sat on the mat"] * 41)  # 246 tokens
    n_prompt = len(encode_prompt(gen.tokenizer, long_prompt, False))
    assert n_prompt == 246
    out = gen.generate([long_prompt], SamplingConfig(temperature=1.0, max_new_tokens=500, seed=1))
    assert gen.stats["generated_tokens"] <= ctx - n_prompt
    assert len(out[0][0].split()) <= ctx - n_prompt


def test_prompt_longer_than_the_context_is_cut_from_the_left(gen):
    ctx = gen.context_length
    too_long = " ".join(["hello world how are you today"] * 60)  # 360 tokens
    out = gen.generate([too_long, "a dog"], SamplingConfig(temperature=1.0, max_new_tokens=20,
                                                           seed=1))
    assert gen.stats["truncated_prompts"] == 1
    assert len(out) == 2 and isinstance(out[0][0], str)
    assert gen.stats["generated_tokens"] <= 2 * 20
    ids, truncated = gen._encode_all([too_long], False, 20)
    assert truncated == 1 and len(ids[0]) + 20 <= ctx


def test_max_time_bounds_a_batch(gen):
    import time

    t = time.monotonic()
    gen.generate(PROMPTS[:2], SamplingConfig(temperature=1.0, max_new_tokens=200, max_time=0.05))
    assert time.monotonic() - t < 0.05 + 1.0


def test_invalid_n(gen):
    with pytest.raises(ConfigError, match="'n'"):
        gen.generate(PROMPTS[:1], SamplingConfig(), n=0)
    assert gen.generate([], SamplingConfig()) == []


def test_score_options_equals_a_full_forward(gen):
    import torch

    prompts = PROMPTS[:3]
    options = ["positive", "negative neutral", "", "the cat sat"]
    g = HFGenerator(gen.model, gen.tokenizer, batch_size=5)  # forces several batches
    scores = g.score_options(prompts, options, chat=True)
    assert len(scores) == 3 and all(len(r) == 4 for r in scores)
    for i, p in enumerate(prompts):
        p_ids = encode_prompt(gen.tokenizer, p, True)
        for j, o in enumerate(options):
            o_ids = gen.tokenizer(o, add_special_tokens=False)["input_ids"]
            if not o_ids:
                assert scores[i][j] == 0.0
                continue
            ids = torch.tensor([p_ids + o_ids])
            with torch.no_grad():
                lp = torch.log_softmax(gen.model(input_ids=ids).logits[0].float(), -1)
            ref = sum(float(lp[len(p_ids) - 1 + k, t]) for k, t in enumerate(o_ids))
            assert scores[i][j] == pytest.approx(ref, abs=1e-4)
    assert g.score_options([], options) == [] and g.score_options(prompts, []) == [[], [], []]


def test_count_tokens(gen):
    assert gen.count_tokens("the cat sat") == 3


# --------------------------------------------------------------------------- CLI

def test_generate_command_json(tiny_model_dir, capsys):
    from selfguide.cli import main

    rc = main(["generate", "--model", str(tiny_model_dir), "--precision", "fp32", "--prompt",
               "the cat", "--prompt", "a dog ran", "-n", "2", "--max-new-tokens", "4",
               "--temperature", "0.8", "--json", "-q"])
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["prompt"] for x in lines] == ["the cat", "a dog ran"]
    assert all(len(x["completions"]) == 2 for x in lines)


def test_generate_command_prompts_file_and_progress(tiny_model_dir, tmp_path, capsys):
    from selfguide.cli import main

    f = tmp_path / "p.txt"
    f.write_text("the cat\n\na dog\nhello world\n")
    rc = main(["generate", "--model", str(tiny_model_dir), "--prompts-file", str(f),
               "--no-chat", "--max-new-tokens", "3", "--seed", "4"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert out.count("=== prompt") == 3 and "3/3 prompts" in err and "model:" in err
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    assert main(["generate", "--model", str(tiny_model_dir), "--prompts-file", str(bad)]) == 2
    assert "p.jsonl:2" in capsys.readouterr().err
    assert main(["generate", "--model", "/nonexistent/m", "--prompt", "x"]) == 2


def test_works_with_a_peft_adapter_model(tiny_model_dir):
    """Evaluation wraps base + adapter in the same backend."""
    from peft import LoraConfig, get_peft_model

    from selfguide.models.loading import load_model

    lm = load_model(ModelConfig(model=str(tiny_model_dir), precision="fp32"))
    base_scores = HFGenerator.from_loaded(lm).score_options(["the cat"], ["sat on", "ran"])
    peft_model = get_peft_model(lm.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    peft_model.eval()
    g = HFGenerator(peft_model, lm.tokenizer, batch_size=4)
    out = g.generate(["the cat", "a dog ran"], SamplingConfig(max_new_tokens=4, seed=1), n=3,
                     chat=True)
    assert [len(o) for o in out] == [3, 3]
    # a fresh LoRA adapter is a no-op (B = 0): scores equal the base model's
    assert g.score_options(["the cat"], ["sat on", "ran"])[0] == pytest.approx(base_scores[0],
                                                                       abs=1e-5)


def test_refill_takes_a_prompt_over_the_token_budget_once_nothing_else_runs(gen):
    """A prompt longer than ``max_batch_tokens`` alone still decodes (as batch after batch
    gives it a batch of its own), never dropped from the stream."""
    s = SamplingConfig(temperature=0.0, max_new_tokens=6)
    prompts = [PROMPTS[0] + " the cat sat on the mat" * 6] + PROMPTS
    kw = {"batch_size": 2, "max_batch_tokens": 40}
    want = HFGenerator(gen.model, gen.tokenizer, **kw).generate(prompts, s)
    got = HFGenerator(gen.model, gen.tokenizer, refill=True, **kw).generate(prompts, s)
    assert got == want and all(o and o[0] for o in got)
