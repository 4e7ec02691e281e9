"""Bring your own model, per family (issue 35): a tiny random-weight Llama, Mistral (with a
sliding window), Qwen2 (tied embeddings), Qwen3 (QK-norm), Gemma 2 (soft-capping, sliding
layers), Gemma 3 (text-only, sliding + full layers) and Phi-3 (fused projections) built in
code, each loaded through ``load_model``; greedy outputs of the backend's decode path equal
``model.generate`` and the path taken is the stated one (the shared-prefix fast path, or the
fallback for sliding-window layers); option scores and seeded samples on that path; one
LoRA step with the default target modules (Phi-3's fused ``qkv_proj``/``gate_up_proj``
included) changes the adapter, which is saved, loaded back and merged; one QLoRA step;
``generate --verbose`` and the studio's model info say what was detected."""

from __future__ import annotations

import re

import pytest
from sgtest.families import FAMILIES, build_family
from sgtest.training import make_run, tensors

from selfguide.backends.hf import HFGenerator
from selfguide.backends.rendering import encode_prompt
from selfguide.settings.fields import ModelConfig, SamplingConfig

HEAD = ("paraphrase the question with other words . answer : positive negative neutral\n\n"
        "input : the cat sat on the mat\noutput : positive\n\n"
        "input : this film was bad and boring\noutput : negative\n\n")
PROMPTS = [HEAD + f"input : {x}\noutput :" for x in
           ["a dog ran in the park", "this movie was great and fun", "hello world",
            "what is the best way to learn python today"]]
# the families whose cache has sliding-window layers take the stated fallback
FALLBACK = {"mistral", "gemma2", "gemma3"}
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def family_dirs(tiny_bpe_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {f: build_family(f, tiny_bpe_model_dir, root / f) for f in FAMILIES}


def _reference(model, tokenizer, prompt: str) -> str:
    """``model.generate`` greedy on one unpadded prompt (transformers' own decoding)."""
    import torch

    ids = torch.tensor([encode_prompt(tokenizer, prompt, True)])
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             do_sample=False, max_new_tokens=NEW_TOKENS,
                             eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_greedy_decode_equals_generate_on_the_stated_path(family, family_dirs):
    from selfguide.models.loading import load_model

    lm = load_model(ModelConfig(model=str(family_dirs[family]), precision="fp32"))
    assert lm.model.config.model_type == {"gemma3": "gemma3_text"}.get(family, family)
    assert lm.info.context_length == 256 and lm.info.has_chat_template
    gen = HFGenerator.from_loaded(lm, batch_size=3)   # two batches, padded rows
    path, why = gen.decode_path()
    if family in FALLBACK:
        assert path == "fallback" and "sliding-window" in why, why
    else:
        assert path == "fast" and "shared-prefix" in why, why
    s = SamplingConfig(temperature=0.0, max_new_tokens=NEW_TOKENS)
    got = [o[0] for o in gen.generate(PROMPTS, s, chat=True)]
    assert gen.stats["decode_path"] == path
    assert (gen.stats["prefix_tokens"] > 40) == (path == "fast")
    want = [_reference(lm.model, lm.tokenizer, p) for p in PROMPTS]
    assert got == want
    assert len(set(got)) > 1 and all(got)  # not a degenerate all-equal or empty output


@pytest.mark.parametrize("family", ["gemma2", "gemma3", "mistral", "phi3"])
def test_a_sliding_window_the_call_never_reaches_takes_the_fast_path(family, tiny_bpe_model_dir,
                                                                      tmp_path):
    """With a 128-token window (wider than any prompt + new tokens here, narrower than the
    256-token context) the call takes the fast path, with the same outputs and scores as
    ``model.generate`` and unpadded forwards; the model's worst case stays the fallback."""
    import torch

    from selfguide.models.loading import load_model

    ref = build_family(family, tiny_bpe_model_dir, tmp_path / family, sliding_window=128)
    lm = load_model(ModelConfig(model=str(ref), precision="fp32"))
    gen = HFGenerator.from_loaded(lm, batch_size=3)
    path, why = gen.decode_path()
    assert path == "fallback" and "window 128 tokens" in why and "fit in the window" in why
    got = [o[0] for o in gen.generate(PROMPTS, SamplingConfig(temperature=0.0,
                                                              max_new_tokens=NEW_TOKENS),
                                      chat=True)]
    assert gen.stats["decode_path"] == "fast" and gen.stats["prefix_tokens"] > 40
    assert got == [_reference(lm.model, lm.tokenizer, p) for p in PROMPTS]
    scores = gen.score_options(PROMPTS, ["negative neutral"], chat=True)  # exact figures
    for prompt, (score,) in zip(PROMPTS, scores):
        ids = encode_prompt(lm.tokenizer, prompt, True)
        opt = lm.tokenizer("negative neutral", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = lm.model(input_ids=torch.tensor([ids + opt])).logits[0].float()
        logp = logp.log_softmax(-1)
        assert score == pytest.approx(sum(float(logp[len(ids) - 1 + i, t])
                                          for i, t in enumerate(opt)), abs=1e-3)
    assert len({round(s[0], 3) for s in scores}) > 1


@pytest.mark.parametrize("family", ["gemma2", "gemma3", "mistral", "qwen3"])
def test_family_scores_and_samples_on_its_path(family, family_dirs):
    """Option scores equal one unpadded forward per option; samples reproduce with their
    seed, split into different answers, and top-k 1 is greedy (the fallback's cache rows
    are added and dropped as the fast path's are)."""
    import torch

    from selfguide.models.loading import load_model

    lm = load_model(ModelConfig(model=str(family_dirs[family]), precision="fp32"))
    gen, tok = HFGenerator.from_loaded(lm, batch_size=3), lm.tokenizer
    options = ["positive", "negative neutral"]
    got = gen.score_options(PROMPTS, options, chat=True)
    for prompt, row in zip(PROMPTS, got):
        ids = encode_prompt(tok, prompt, True)
        for option, score in zip(options, row):
            opt = tok(option, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logp = lm.model(input_ids=torch.tensor([ids + opt])).logits[0].float()
            logp = logp.log_softmax(-1)
            want = sum(float(logp[len(ids) - 1 + i, t]) for i, t in enumerate(opt))
            assert score == pytest.approx(want, abs=1e-3)
    s = SamplingConfig(temperature=1.0, max_new_tokens=8, seed=3)
    drawn = gen.generate(PROMPTS, s, n=4, chat=True)
    assert drawn == gen.generate(PROMPTS, s, n=4, chat=True)
    assert any(len(set(o)) > 1 for o in drawn)
    top1 = gen.generate(PROMPTS, SamplingConfig(temperature=1.0, top_k=1, max_new_tokens=8,
                                                seed=3), n=3, chat=True)
    greedy = gen.generate(PROMPTS, SamplingConfig(temperature=0.0, max_new_tokens=8), chat=True)
    assert [o[0] for o in greedy] == [o[0] for o in top1] == [o[2] for o in top1]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_lora_step_save_load_merge(family, family_dirs, workspace, tmp_path):
    import torch

    from selfguide.models import adapters
    from selfguide.settings.training import TrainConfig
    from selfguide.training import trainer as training

    run = make_run(workspace, family_dirs[family], family, n=4)
    res = training.train(run, TrainConfig(grad_accum=1, method="lora", precision="fp32",
                                          max_steps=1, batch_size=4, learning_rate=5e-2,
                                          val_fraction=0.0, lora_r=4, lora_alpha=8))
    weights = tensors(res.adapter_dir / "adapter_model.safetensors")
    targets = {k.split(".")[-3] for k in weights}
    assert targets == ({"qkv_proj", "o_proj", "gate_up_proj", "down_proj"} if family == "phi3"
                       else {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                             "down_proj"})
    assert all(float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k)

    lm, tuned = adapters.load_tuned(run, precision="fp32")
    ids = torch.tensor([encode_prompt(lm.tokenizer, PROMPTS[0], True)])
    with torch.no_grad():
        after = tuned(input_ids=ids).logits
        with tuned.disable_adapter():
            before = tuned(input_ids=ids).logits
    assert float((after - before).abs().max()) > 1e-3       # the loaded adapter acts
    merged_dir = adapters.merge(run, tmp_path / "merged")
    got = tensors(merged_dir / "model.safetensors")
    want = {k: v.detach() for k, v in tuned.merge_and_unload().state_dict().items()}
    base = tensors(family_dirs[family] / "model.safetensors")
    changed = 0
    for name, w in want.items():
        if name not in got:
            continue  # a tied head is saved once
        g = got[name].float()
        assert torch.allclose(g, w, rtol=2 ** -7, atol=1e-3), name  # bf16 rounding
        delta = float((w - base[name].float()).abs().mean())
        if delta > 0:  # an adapted projection: the merge carries the update
            assert float((g - w).abs().mean()) < 0.5 * delta, name
            changed += 1
    assert changed >= len(targets) * 2  # every adapted projection of both layers moved


@pytest.mark.parametrize("family", ["gemma2", "phi3"])
def test_generate_verbose_and_the_model_page_say_what_was_detected(family, family_dirs,
                                                                   capsys):
    """``generate --verbose`` and the studio's loaded-model info name the family, chat or
    base, the context, the decode path (and why) and the precision."""
    from selfguide import cli
    from studio.app import resources

    ref = str(family_dirs[family])
    assert cli.main(["generate", "--model", ref, "--precision", "fp32", "-p", "hello world",
                     "--max-new-tokens", "3", "--verbose"]) == 0
    err = capsys.readouterr().err
    assert f"family: {family} (" in err and "prompts: chat" in err
    assert "context: 256 tokens" in err and "precision: fp32 (float32) on cpu" in err
    want = ("decode path: fallback: own decode loop, prompts prefilled whole: sliding-window"
            if family in FALLBACK else "decode path: fast: own decode loop, shared-prefix")
    assert want in err
    assert re.search(r"memory: needs ~[\d.]+ GB at fp32, [\d.]+ GB available \(cpu\)", err)
    info = resources.build_model(ModelConfig(model=ref, precision="fp32", chat=False)).info
    assert info["detected"]["family"].startswith(family)
    assert info["detected"]["prompts"] == "plain text (chat off)"
    assert info["detected"]["decode path"] in err


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_qlora_step(family, family_dirs, workspace):
    """One QLoRA step (4-bit NF4 base, bitsandbytes on the CPU) on the default targets."""
    pytest.importorskip("bitsandbytes")
    from selfguide.settings.training import TrainConfig
    from selfguide.training import trainer as training

    run = make_run(workspace, family_dirs[family], family, n=4)
    res = training.train(run, TrainConfig(grad_accum=1, method="qlora", max_steps=1,
                                          batch_size=4, learning_rate=5e-2, val_fraction=0.0,
                                          lora_r=4, lora_alpha=8))
    weights = tensors(res.adapter_dir / "adapter_model.safetensors")
    assert ("qkv_proj" in {k.split(".")[-3] for k in weights}) == (family == "phi3")
    assert all(float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k)
    from selfguide.models.adapters import read_adapter_manifest

    assert read_adapter_manifest(res.adapter_dir)["method"] == "qlora"
