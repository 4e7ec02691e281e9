"""GGUF export per family (issue 35): each tiny family of ``sgtest.families`` written with
``write_gguf``, read with the ``gguf`` reader (architecture, the family's own tensors and
hparams, Gemma's norms stored as 1 + w) and loaded back with transformers' GGUF loader
(``verify_gguf``: same logits, same tokenizer), then loaded by the product as a ``.gguf``;
``export-model`` of a tuned Gemma 2 / Phi-3 / Qwen3 run; what cannot come back as itself is
refused with ``UnsupportedModel``."""

from __future__ import annotations

import pytest
from sgtest.families import FAMILIES, build_family

from selfguide.errors import UnsupportedModel
from selfguide.export import gguf as gguf_export

GGUF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
             "gemma2": "gemma2", "gemma3": "gemma3", "phi3": "phi3"}
# tensors (of block 0) only the family has
OWN_TENSORS = {"qwen3": {"blk.0.attn_q_norm.weight", "blk.0.attn_k_norm.weight"},
               "phi3": {"blk.0.attn_qkv.weight", "blk.0.ffn_up.weight"},
               "gemma2": {"blk.0.post_attention_norm.weight", "blk.0.post_ffw_norm.weight"},
               "gemma3": {"blk.0.attn_q_norm.weight", "blk.0.post_ffw_norm.weight"}}
PROMPTS = ["input : the cat sat on the mat\noutput :", "input : a dog ran in the park\noutput :"]
TEXTS = ["<|user|> input : the cat sat on the mat\noutput : <|assistant|>",
         "this movie was great and fun"]


def _load(path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(path))


def _field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_gguf_reads_back_as_itself(family, tiny_bpe_model_dir, tmp_path, monkeypatch):
    import gguf
    import numpy as np

    from selfguide.backends.hf import HFGenerator
    from selfguide.models.loading import load_model
    from selfguide.settings.fields import ModelConfig, SamplingConfig

    # Mistral without a window: llama.cpp's arch llama (and its reader here) has none
    kw = {"sliding_window": None} if family == "mistral" else {}
    model, tok = _load(build_family(family, tiny_bpe_model_dir, tmp_path / family, **kw))
    path = tmp_path / f"{family}.gguf"
    info = gguf_export.write_gguf(model, tok, path, quant="f32", name="tiny")
    assert info["arch"] == GGUF_ARCH[family] and info["tokenizer"] == "gpt2"

    reader = gguf.GGUFReader(str(path))
    arch = _field(reader, "general.architecture")
    assert arch == GGUF_ARCH[family]
    names = {t.name for t in reader.tensors}
    assert OWN_TENSORS.get(family, set()) <= names
    assert ("output.weight" in names) == (not model.config.tie_word_embeddings)
    assert _field(reader, f"{arch}.block_count") == model.config.num_hidden_layers
    if family.startswith("gemma"):
        assert _field(reader, f"{arch}.attention.sliding_window") == 8
        assert _field(reader, f"{arch}.attention.key_length") == 16
        norm = next(t for t in reader.tensors if t.name == "blk.0.attn_norm.weight")
        w = model.model.layers[0].input_layernorm.weight.detach().numpy()
        assert np.allclose(np.asarray(norm.data), w + 1.0)  # llama.cpp's Gemma convention
    if family == "gemma2":
        assert _field(reader, "gemma2.attn_logit_softcapping") == pytest.approx(50.0)
        assert _field(reader, "gemma2.final_logit_softcapping") == pytest.approx(30.0)

    v = gguf_export.verify_gguf(path, model, tok, TEXTS, new_tokens=4)
    assert v["max_abs_diff"] < 1e-4 * max(1.0, v["logit_std"]) and v["logit_std"] > 0.05
    assert v["top1_agreement"] == 1.0 and v["tokenizer_match"] and v["chat_template"]


    # and the product loads the GGUF as it loads a user's: converted once, then generating
    # what the Hugging Face folder generates, on the same decode path
    monkeypatch.setenv("SELFGUIDE_CACHE", str(tmp_path / "cache"))
    outs, paths = [], []
    for ref in (tmp_path / family, path):
        lm = load_model(ModelConfig(model=str(ref), precision="fp32"))
        gen = HFGenerator.from_loaded(lm)
        outs.append(gen.generate(PROMPTS, SamplingConfig(temperature=0.0, max_new_tokens=8),
                                 chat=True))
        paths.append(gen.decode_path()[0])
    assert lm.info.kind == "gguf" and lm.info.has_chat_template
    assert lm.info.context_length == 256
    assert outs[0] == outs[1] and paths[0] == paths[1]
    assert paths[0] == ("fallback" if family.startswith("gemma") else "fast")  # no window


def test_gguf_refuses_what_would_not_read_back(tiny_bpe_model_dir, tmp_path):
    """A Qwen3 whose head_dim is not the family's 128 (transformers' reader does not read
    it) and a family without a GGUF mapping here are refused before anything is written."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    model, tok = _load(build_family("qwen3", tiny_bpe_model_dir, tmp_path / "q3",
                                    head_dim=16, num_attention_heads=4,
                                    num_key_value_heads=2))
    with pytest.raises(UnsupportedModel, match="head_dim=16"):
        gguf_export.write_gguf(model, tok, tmp_path / "q3.gguf", quant="f32")
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2))
    with pytest.raises(UnsupportedModel, match="gpt2") as e:
        gguf_export.write_gguf(gpt2, tok, tmp_path / "g.gguf", quant="f32")
    assert "safetensors" in e.value.hint
    assert not (tmp_path / "q3.gguf").exists() and not (tmp_path / "g.gguf").exists()


@pytest.mark.parametrize("family", ["gemma2", "phi3", "qwen3"])
def test_export_model_of_a_tuned_family_run(family, tiny_bpe_model_dir, tmp_path, workspace,
                                            capsys):
    """``selfguide export-model`` on a run of the family (one LoRA step): the merged model's
    GGUF is verified with transformers and comes with a Modelfile."""
    import json

    from sgtest.exports import _fake_eval, _report
    from sgtest.training import make_run

    from selfguide import cli
    from selfguide.settings.training import TrainConfig
    from selfguide.training import trainer as training

    run = make_run(workspace, build_family(family, tiny_bpe_model_dir, tmp_path / family),
                   "f", n=4)
    _report(run)
    _fake_eval(run)
    training.train(run, TrainConfig(grad_accum=1, method="lora", precision="fp32", max_steps=1,
                                    batch_size=4, learning_rate=5e-2, val_fraction=0.0,
                                    lora_r=4, lora_alpha=8))
    out = tmp_path / "gguf"
    assert cli.main(["export-model", "--run", "f", "--out", str(out), "--quant", "f32"]) == 0
    assert "verified with transformers" in capsys.readouterr().out
    summary = json.loads((out / "export.json").read_text())
    v = summary["verify"]
    assert summary["gguf"]["arch"] == GGUF_ARCH[family]
    assert v["max_abs_diff"] < 1e-4 and v["top1_agreement"] == 1.0 and v["tokenizer_match"]
    assert "\nFROM ./f-f32.gguf\n" in (out / "Modelfile").read_text()
