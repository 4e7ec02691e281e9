"""Tiny random-weight models of the common families, built in code from transformers configs
(no download): the tiny BPE tokenizer of ``tests/conftest.py`` with a ~100 KB model of each
family (hidden 64, 2 layers; Gemma 3 has 6 so its default pattern has a full-attention
layer). The configs keep the family's defaults where transformers' GGUF reader takes them
from the defaults (Qwen3's head_dim, Gemma's query_pre_attn_scalar and soft-capping, Gemma
3's layer pattern), so the same model serves the decode, training and GGUF tests."""

from __future__ import annotations

import shutil
from pathlib import Path

COMMON = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, bos_token_id=2,
              eos_token_id=3, pad_token_id=1, initializer_range=0.2)

# family -> (config class, model class, config overrides)
FAMILIES: dict[str, tuple[str, str, dict]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": 8, "head_dim": 16}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {"tie_word_embeddings": True}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 128, "num_attention_heads": 2,
                                                  "num_key_value_heads": 1,
                                                  "tie_word_embeddings": True}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", {"head_dim": 16, "sliding_window": 8}),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", {"head_dim": 16, "sliding_window": 8,
                                                         "num_hidden_layers": 6}),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {}),
}


def build_family(family: str, tokenizer_dir: Path, path: Path, **overrides) -> Path:
    """Save a tiny ``family`` model with the tokenizer of ``tokenizer_dir`` to ``path``."""
    import json

    import torch
    import transformers

    cfg_name, model_name, extra = FAMILIES[family]
    vocab = json.loads((tokenizer_dir / "tokenizer.json").read_text())["model"]["vocab"]
    cfg = getattr(transformers, cfg_name)(vocab_size=len(vocab), **{**COMMON, **extra,
                                                                     **overrides})
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(cfg)
    with torch.no_grad():  # random norms, so a wrong norm convention shows in the logits
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.normal_(0, 0.1) if "gemma" in family else p.uniform_(0.8, 1.2)
        if "gemma" in family:  # its embeddings are scaled by sqrt(hidden): keep them from
            model.get_input_embeddings().weight.mul_(0.1)  # drowning the layers (tied head)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    for f in tokenizer_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, path / f.name)
    return path
