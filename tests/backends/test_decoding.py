"""The backend's own decode loop (:mod:`selfguide.backends.decoding`) on the tiny Llama:
prefix caching gives the same greedy outputs and option scores as prefilling every prompt
whole and as the previous ``model.generate`` path; finished rows leave the batch; stop strings
are found without decoding every row; one check on the embedded model with real prompts."""

from __future__ import annotations

import pytest

from selfguide.backends import decoding
from selfguide.backends.hf import HFGenerator
from selfguide.backends.rendering import encode_prompt
from selfguide.settings.fields import ModelConfig, SamplingConfig

HEAD = ("paraphrase the question with other words . answer : positive negative neutral\n\n"
        "input : the cat sat on the mat\noutput : positive\n\n"
        "input : this film was bad and boring\noutput : negative\n\n"
        "input : hello world how are you today\noutput : neutral\n\n")
INPUTS = ["a dog ran in the park", "this movie was great and fun fun great",
          "what is the best way", "the cat", "hello world how are you today is the best way"]
TASK_PROMPTS = [HEAD + f"input : {x}\noutput :" for x in INPUTS]


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    from selfguide.models.loading import load_model

    return load_model(ModelConfig(model=str(tiny_model_dir), precision="fp32"))


def _gens(lm, **kw) -> dict[str, HFGenerator]:
    """The previous path, the loop without and with prefix caching."""
    return {"generate": HFGenerator(lm.model, lm.tokenizer, decode_loop=False, **kw),
            "loop": HFGenerator(lm.model, lm.tokenizer, prefix_cache=False, **kw),
            "prefix": HFGenerator(lm.model, lm.tokenizer, **kw)}


@pytest.mark.parametrize("seqs, common, usable", [
    ([], 0, 0),
    ([[1, 2, 3]], 3, 0),                                 # one prompt: shorter than MIN_PREFIX
    ([list(range(20))], 20, 19),                        # keeps one token to feed
    ([list(range(20)), list(range(12)) + [99]], 12, 12),
    ([list(range(20)), list(range(12))], 12, 11),       # a prompt that is all prefix
    ([list(range(20)), [5] + list(range(20))], 0, 0),
])
def test_common_and_usable_prefix(seqs, common, usable):
    assert decoding.common_prefix(seqs) == common
    assert decoding.usable_prefix(seqs) == usable


@pytest.mark.parametrize("chat", [False, True])
def test_prefix_cache_greedy_equals_no_cache_and_generate(lm, chat):
    """Greedy outputs are identical with and without the prefix cache (several batches, holes
    of different widths between prefix and suffix) and equal to ``model.generate``."""
    s = SamplingConfig(temperature=0.0, max_new_tokens=10)
    outs = {}
    for name, g in _gens(lm, batch_size=2).items():
        outs[name] = g.generate(TASK_PROMPTS, s, n=2, chat=chat)
        assert g.stats["batches"] == 3
        if name == "prefix":
            ids = [encode_prompt(lm.tokenizer, p, chat) for p in TASK_PROMPTS]
            assert g.stats["prefix_tokens"] == decoding.common_prefix(ids) > 40
    assert outs["prefix"] == outs["loop"] == outs["generate"]
    assert len({o[0] for o in outs["prefix"]}) > 1  # not a degenerate all-equal output


def test_prefix_cache_sampling_top_k_one_is_greedy_and_seeds_reproduce(lm):
    g = HFGenerator(lm.model, lm.tokenizer, batch_size=6)
    greedy = g.generate(TASK_PROMPTS, SamplingConfig(temperature=0.0, max_new_tokens=8))
    top1 = g.generate(TASK_PROMPTS, SamplingConfig(temperature=1.0, top_k=1, max_new_tokens=8,
                                                   seed=3), n=3)
    assert [o[0] for o in greedy] == [o[0] for o in top1] == [o[2] for o in top1]
    s = SamplingConfig(temperature=1.5, top_p=0.9, max_new_tokens=8, seed=7)
    a = g.generate(TASK_PROMPTS, s, n=4)
    assert a == g.generate(TASK_PROMPTS, s, n=4) and any(len(set(o)) > 1 for o in a)


def test_score_options_with_prefix_cache_equal_without(lm):
    options = ["positive", "negative neutral", "", "the cat sat"]
    gens = _gens(lm, batch_size=5)
    with_prefix = gens["prefix"].score_options(TASK_PROMPTS, options, chat=True)
    without = gens["loop"].score_options(TASK_PROMPTS, options, chat=True)
    for a, b in zip(with_prefix, without):
        assert a == pytest.approx(b, abs=1e-5)
    assert with_prefix[0][2] == 0.0 and with_prefix[0][0] < 0


def test_finished_rows_leave_the_batch_without_changing_the_others(lm):
    """Rows with a budget of 1 token are dropped after the first step: later steps cost
    fewer rows, and the remaining rows decode exactly as if nobody had left."""
    import torch

    seqs = [encode_prompt(lm.tokenizer, p, False) for p in TASK_PROMPTS[:4]]
    pick = decoding.token_picker(True, 1.0, 0, 1.0)

    def run(budgets):
        stats = decoding.DecodeStats()
        with torch.inference_mode():
            rows = decoding.prefill(lm.model, seqs, None, lm.tokenizer.pad_token_id, "cpu", True)
            out = decoding.decode(lm.model, rows, budgets, pick=pick, eos=[], stats=stats)
        return out, stats

    full, s_full = run([8, 8, 8, 8])
    part, s_part = run([1, 8, 1, 8])
    assert [len(r) for r in part] == [1, 8, 1, 8]
    assert part[1] == full[1] and part[3] == full[3] and part[0] == full[0][:1]
    assert s_full.steps == s_part.steps == 7
    assert s_full.row_steps == 4 * 7 and s_part.row_steps == 2 * 7


def test_stop_strings_across_tokens_equal_the_generate_path(lm):
    gens = _gens(lm, batch_size=3)
    [[free]] = gens["loop"].generate([TASK_PROMPTS[0]], SamplingConfig(temperature=0.0,
                                                                       max_new_tokens=20))
    words = free.split()
    assert len(words) >= 4, free
    stop = f"{words[1]} {words[2]}"  # spans two tokens of the WordLevel vocabulary
    s = SamplingConfig(temperature=0.0, max_new_tokens=20, stop=(stop, "zzz"))
    gens["prefix"].generate(TASK_PROMPTS, SamplingConfig(temperature=0.0, max_new_tokens=20))
    unstopped = gens["prefix"].stats["generated_tokens"]
    outs = {name: g.generate(TASK_PROMPTS, s) for name, g in gens.items()}
    assert outs["prefix"] == outs["loop"] == outs["generate"]
    assert outs["prefix"][0][0] == free[:free.index(stop)]
    assert gens["prefix"].stats["generated_tokens"] < unstopped  # the row stopped early


def test_stop_scanner_only_decodes_rows_whose_token_can_end_a_stop(lm):
    import torch

    tok = lm.tokenizer
    scanner = decoding.StopScanner(tok, ("cat sat",), len(tok), "cpu")
    ids = {w: tok.convert_tokens_to_ids(w) for w in ("cat", "sat", "dog", "park")}
    assert not scanner.candidates[ids["dog"]] and not scanner.candidates[ids["park"]]
    assert scanner.candidates[ids["sat"]] and scanner.candidates[ids["cat"]]  # "t" ends it
    out = [[ids["dog"], ids["cat"], ids["sat"]], [ids["dog"], ids["sat"]], [ids["park"]]]
    last = torch.tensor([r[-1] for r in out])
    assert scanner.done(last, [0, 1, 2], [True, True, True], out) == [0]
    assert scanner.done(last, [0, 1, 2], [False, True, True], out) == []


def _decode(lm, seqs, budgets, pick, samples, seed=5):
    import torch

    stats = decoding.DecodeStats()
    with torch.inference_mode():
        torch.manual_seed(seed)
        rows = decoding.prefill(lm.model, seqs, None, lm.tokenizer.pad_token_id, "cpu", True,
                                room=max(budgets))
        out = decoding.decode(lm.model, rows, budgets, pick=pick, eos=[], stats=stats,
                              samples=samples)
    return out, stats


@pytest.mark.parametrize("temperature,top_k", [(1.0, 1), (1.5, 0)])
def test_samples_sharing_a_node_draw_exactly_as_separate_rows(lm, temperature, top_k):
    """n samples of a prompt share one cache row while their tokens agree: the same draws
    (same seed) give the same tokens as decoding every sample as a row of its own, and the
    shared run computes fewer rows (one per prompt when the samples agree, top-k 1; the tiny
    model's flat logits make samples differ at T 1.5: nodes split)."""
    seqs = [encode_prompt(lm.tokenizer, p, False) for p in TASK_PROMPTS[:3]]
    n, budget = 4, 8
    pick = decoding.token_picker(False, temperature, top_k, 1.0)
    shared, s_shared = _decode(lm, seqs, [budget] * (n * 3), pick, samples=n)
    alone, s_alone = _decode(lm, [s for s in seqs for _ in range(n)], [budget] * (n * 3),
                             pick, samples=1)
    assert shared == alone
    assert s_alone.row_steps == 3 * n * (budget - 1)
    assert s_shared.row_steps <= s_alone.row_steps
    if top_k == 1:
        assert s_shared.row_steps == 3 * (budget - 1)
    else:  # the samples of a prompt really differ: nodes split
        assert any(len({tuple(shared[p * n + j]) for j in range(n)}) > 1 for p in range(3))


def test_sampler_equals_the_transformers_warpers():
    """The probabilities the sampler draws from equal transformers' temperature / top-k /
    top-p warpers + softmax (also where the nucleus is wider than the first candidates),
    and draws follow them."""
    import torch
    from transformers import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    from selfguide.backends import sampling

    torch.manual_seed(0)
    for t, k, p, scale in [(0.3, 0, 0.95, 3), (0.7, 0, 0.95, 3), (1.0, 0, 1.0, 3),
                           (1.5, 0, 0.9, 0.05), (1.0, 40, 0.9, 3), (1.0, 5, 1.0, 3)]:
        x = torch.randn(6, 5000) * scale
        warp = LogitsProcessorList([TemperatureLogitsWarper(t)])
        warp += [TopKLogitsWarper(k)] if k else []
        warp += [TopPLogitsWarper(p)] if p < 1 else []
        want = torch.softmax(warp(None, x.clone()), -1)
        ids, probs = sampling.nucleus(x, t, k, p, candidates=64)
        got = probs if ids is None else torch.zeros_like(x).scatter_(-1, ids, probs)
        assert torch.allclose(got, want, atol=1e-6), (t, k, p, scale)
        assert ((got > 0) == (want > 0)).all()
    x = torch.tensor([[2.0, 1.0, 0.5, 0.0, -9.0]])
    pick = sampling.token_picker(False, 1.0, 0, 0.9)
    draws = pick(x, torch.zeros(100_000, dtype=torch.long))
    freq = torch.bincount(draws, minlength=5) / 100_000
    want = torch.softmax(TopPLogitsWarper(0.9)(None, x.clone()), -1)[0]
    assert torch.allclose(freq, want, atol=0.01) and freq[4] == 0


def test_switches_from_the_environment(lm, monkeypatch):
    monkeypatch.setenv("SELFGUIDE_PREFIX_CACHE", "0")
    monkeypatch.setenv("SELFGUIDE_DECODE_LOOP", "off")
    g = HFGenerator(lm.model, lm.tokenizer)
    assert not g.prefix_cache and not g.decode_loop
    assert HFGenerator(lm.model, lm.tokenizer, prefix_cache=True).prefix_cache
    monkeypatch.delenv("SELFGUIDE_PREFIX_CACHE")
    monkeypatch.delenv("SELFGUIDE_DECODE_LOOP")
    g = HFGenerator(lm.model, lm.tokenizer)
    assert g.prefix_cache and g.decode_loop


def test_a_repetition_penalty_in_the_generation_config_takes_the_generate_path(lm, monkeypatch):
    g = HFGenerator(lm.model, lm.tokenizer)
    assert g._use_loop(SamplingConfig())
    monkeypatch.setattr(lm.model.generation_config, "repetition_penalty", 1.3)
    assert not g._use_loop(SamplingConfig())


@pytest.mark.slow
def test_embedded_model_real_prompts_prefix_cache_equals_no_cache(niv2_dir):
    """task1529 labelling prompts (chat template, as the pipeline renders them) on the
    embedded SmolLM2 in fp32: greedy completions identical, option scores within 1e-3."""
    from selfguide.models.loading import load_model
    from selfguide.task.formats import load_task
    from selfguide.task.prompts import task_prompt

    task = load_task(niv2_dir / "task1529.json")
    prompts = [task_prompt(task, r.input) for r in list(task.test)[:2]]
    lm = load_model(ModelConfig(model="embedded", precision="fp32"))
    on = HFGenerator.from_loaded(lm)
    off = HFGenerator.from_loaded(lm, prefix_cache=False, decode_loop=False)
    s = SamplingConfig(temperature=0.0, max_new_tokens=6, stop=("\n",))
    assert on.generate(prompts, s, chat=True) == off.generate(prompts, s, chat=True)
    assert on.stats["prefix_tokens"] > 200
    labels = list(task.labels)
    for a, b in zip(on.score_options(prompts, labels, chat=True),
                    off.score_options(prompts, labels, chat=True)):
        assert a == pytest.approx(b, abs=1e-3)


def test_loop_start_finds_a_phrase_repeated_to_the_limit():
    from selfguide.backends.decoding import loop_start

    phrase = [5, 6, 7]
    assert loop_start([1, 2] + phrase * 8) == 2 + 3  # first occurrence kept
    assert loop_start([1, 2] + phrase * 7) is None   # 21 tokens: under the 24 a loop needs
    assert loop_start([9] * 24) == 1
    assert loop_start(list(range(40))) is None
    assert loop_start([1, 2, 3, 4, 5] * 4 + [1, 2, 3, 4]) is None  # not 24 tokens yet


def test_stop_loops_cuts_a_looping_greedy_completion(tiny_model_dir):
    """A tiny random model loops under greedy decoding; with the guard the completion ends
    at its first repeat instead of running to the budget, and without it nothing changes."""
    from selfguide import backends
    from selfguide.settings.fields import ModelConfig, SamplingConfig

    gen = backends.get_generator("hf", config=ModelConfig(model=str(tiny_model_dir),
                                                          precision="fp32"))
    prompts = ["the cat sat on the", "a dog ran in the park and"]
    plain = gen.generate(prompts, SamplingConfig(temperature=0.0, max_new_tokens=96))
    guarded = gen.generate(prompts, SamplingConfig(temperature=0.0, max_new_tokens=96,
                                                   stop_loops=True))
    for (p,), (g,) in zip(plain, guarded):
        assert p.startswith(g.rstrip()[: max(0, len(g.rstrip()) - 1)])
        assert len(g) <= len(p)
    assert any(len(g) < len(p) for (p,), (g,) in zip(plain, guarded))


@pytest.mark.parametrize("layout", ["cascade", "copied", "no prefix"])
def test_refill_joins_waiting_prompts_exactly(lm, monkeypatch, layout):
    """Continuous refill: prompts fed into the places of finished rows (right-aligned,
    holes before them, leading holes dropped) decode exactly as each prompt decoded alone,
    with the prefix held once, copied into every row, or absent; each prompt is reported
    done once, and the stream takes fewer forward passes than batch after batch."""
    import torch

    from selfguide.backends import cascade

    if layout == "copied":
        monkeypatch.setenv(cascade.ENV, "0")
    monkeypatch.setattr(decoding, "MIN_HOLES", 1)  # drop every common hole column
    dropped = []
    real_drop = decoding.kvcache.drop_columns
    monkeypatch.setattr(decoding.kvcache, "drop_columns",
                        lambda c, start, count: (dropped.append(count), real_drop(c, start, count)))
    tok = lm.tokenizer
    prompts = TASK_PROMPTS + [HEAD + "input : the best way to the park is\noutput :",
                              HEAD + "input : cat\noutput :"]
    seqs = [encode_prompt(tok, p, False) for p in prompts]
    budgets = [2, 11, 4, 6, 3, 9, 5]
    pick = decoding.token_picker(True, 1.0, 0, 1.0)

    def prefix_of(group):
        if layout == "no prefix":
            return None
        return decoding.build_prefix(lm.model, seqs[0][:decoding.usable_prefix(seqs)], "cpu",
                                     True, plain=True)

    def run(order, slots=None, feed_from=None):
        stats, done = decoding.DecodeStats(), []
        with torch.inference_mode(), cascade.enabled(lm.model):
            prefix = prefix_of(order)
            first = order[:slots] if slots else order
            waiting = list(order[len(first):])
            fed = list(first)

            def feed(free, width):
                p = prefix.length if prefix is not None else 0
                take = [i for i in waiting[:free] if width is None or len(seqs[i]) - p <= width]
                if not take:
                    return None
                del waiting[:len(take)]
                fed.extend(take)
                return decoding.Feed(decoding.prefill(lm.model, [seqs[i] for i in take],
                                                      prefix, tok.pad_token_id, "cpu", True,
                                                      room=12),
                                     [budgets[i] for i in take])

            rows = decoding.prefill(lm.model, [seqs[i] for i in first], prefix,
                                    tok.pad_token_id, "cpu", True, room=12)
            out = decoding.decode(lm.model, rows, [budgets[i] for i in first], pick=pick,
                                  eos=[], stats=stats, feed=feed if slots else None,
                                  slots=slots, on_done=lambda k, t: done.append(fed[k]))
        return {fed[k]: o for k, o in enumerate(out)}, stats, done

    alone = {i: run([i])[0][i] for i in range(len(seqs))}
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    got, stats, done = run(order, slots=3)
    assert got == alone
    assert sorted(done) == list(range(len(seqs))) and len(got[order[1]]) == budgets[order[1]]
    batches = sum(max(budgets[i] for i in order[k:k + 3]) - 1 for k in range(0, 7, 3))
    assert stats.steps < batches
    assert dropped  # the places of rows that left were given back
