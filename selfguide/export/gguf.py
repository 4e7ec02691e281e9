"""Write a (merged) Hugging Face causal LM as one GGUF file with the ``gguf`` package, and
check it by loading it back with transformers' GGUF loader.

What it does: :func:`write_gguf` maps the model's hyperparameters and tensors to llama.cpp's
names (``gguf.get_tensor_name_map``), permutes the Q/K projections of the llama
architecture the way llama.cpp's ``convert_hf_to_gguf.py`` does (transformers undoes it on
load), stores each tensor in the chosen type (:data:`QUANTS`; norms and biases stay F32, a
tensor whose rows do not fit the quantization block falls back to F16, as llama.cpp does)
and writes the tokenizer: copied field by field from the original GGUF when the base model
came from one (the embedded model), otherwise built from the Hugging Face tokenizer
(byte-level BPE as ``gpt2``, sentencepiece-style BPE as ``llama``), with the chat template
and special tokens. :func:`verify_gguf` loads the file back with
``from_pretrained(..., gguf_file=...)`` and compares its logits with the source model's on
the same token ids, and its tokenizer with the source tokenizer.

What it does not do: merge adapters, choose the output folder or write the Modelfile
(:mod:`selfguide.export.model`, :mod:`selfguide.export.ollama`). Architectures: those transformers
reads back from GGUF and this module maps (:data:`ARCHS`: Llama, Mistral, Qwen2, Qwen3,
Phi-3 with its fused tensors, Gemma 2 and text-only Gemma 3 with their norms stored as 1 + w,
sliding window and soft-capping); others, and models transformers' reader would not read
back as themselves (:func:`check_read_back`), raise ``UnsupportedModel``. K-quants
(q4_k_m, ...) need llama.cpp's ``llama-quantize``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from selfguide.errors import UnsupportedModel

QUANTS = ("f16", "bf16", "f32", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """How one transformers ``model_type`` is written: the GGUF architecture name, whether
    llama.cpp expects the Q/K rows permuted (rotary halves interleaved), and the family's
    own conventions (as llama.cpp's ``convert_hf_to_gguf.py`` writes them)."""

    gguf_arch: str
    permute_qk: bool
    rope_dims: bool  # write rope.dimension_count (= the rotary part of head_dim)
    norm_plus_one: bool = False  # Gemma: RMSNorm scales by (1 + w); GGUF stores 1 + w
    gemma: bool = False  # sliding window, soft-capping (Gemma 2/3 hparams)


ARCHS = {
    "llama": ArchSpec("llama", permute_qk=True, rope_dims=True),
    "mistral": ArchSpec("llama", permute_qk=True, rope_dims=True),  # llama.cpp: arch llama
    "qwen2": ArchSpec("qwen2", permute_qk=False, rope_dims=False),
    "qwen3": ArchSpec("qwen3", permute_qk=False, rope_dims=False),  # + attn_q/k_norm
    "phi3": ArchSpec("phi3", permute_qk=False, rope_dims=True),  # fused attn_qkv, ffn_up
    "gemma2": ArchSpec("gemma2", permute_qk=False, rope_dims=False, norm_plus_one=True,
                       gemma=True),
    "gemma3_text": ArchSpec("gemma3", permute_qk=False, rope_dims=False, norm_plus_one=True,
                            gemma=True),  # Gemma3ForCausalLM (text-only)
}
# config fields transformers' GGUF reader does not read but takes from the family's
# defaults: a model that differs there would not load back as itself
READ_AS_DEFAULT = ("head_dim", "query_pre_attn_scalar", "attn_logit_softcapping",
                   "final_logit_softcapping", "layer_types")


def arch_of(config: Any) -> ArchSpec:
    """The :class:`ArchSpec` of a transformers config, or ``UnsupportedModel``."""
    spec = ARCHS.get(getattr(config, "model_type", None))
    if spec is None:
        raise UnsupportedModel(
            f"GGUF export does not support model_type {config.model_type!r}.",
            hint="Supported: " + ", ".join(sorted(ARCHS)) + ". Export safetensors with "
                 "'selfguide export-model --format safetensors' and convert it with "
                 "llama.cpp's convert_hf_to_gguf.py.")
    return spec


def _rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    if "full_attention" in params:  # per layer type (Gemma 3): llama.cpp's local base is 1e4
        local = params.get("sliding_attention") or {}
        if float(local.get("rope_theta", 10000.0)) != 10000.0 or \
                local.get("rope_type") not in (None, "default"):
            raise UnsupportedModel("GGUF export writes the sliding layers' rope base 10000 "
                                   "only (llama.cpp's Gemma 3 default).",
                                   hint="Export safetensors and convert with llama.cpp.")
        params = params["full_attention"]
    rope_type = params.get("rope_type") or (getattr(config, "rope_scaling", None) or {}).get(
        "rope_type")
    if rope_type not in (None, "default"):
        raise UnsupportedModel(f"GGUF export does not write rope scaling {rope_type!r}.",
                               hint="Export safetensors and convert with llama.cpp.")
    theta = params.get("rope_theta", getattr(config, "rope_theta", None))
    return float(theta if theta is not None else 10000.0)


def _head_dim(config: Any) -> int:
    return int(getattr(config, "head_dim", None)
               or config.hidden_size // config.num_attention_heads)


def write_hparams(writer: Any, config: Any, spec: ArchSpec) -> None:
    """The architecture's hyperparameters, under the keys transformers' loader reads."""
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(getattr(config, "num_key_value_heads", None)
                                 or config.num_attention_heads))
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(int(config.vocab_size))
    if spec.rope_dims:
        params = getattr(config, "rope_parameters", None) or {}
        part = params.get("partial_rotary_factor") or getattr(config, "partial_rotary_factor",
                                                              None) or 1.0
        writer.add_rope_dimension_count(int(_head_dim(config) * float(part)))
    if getattr(config, "head_dim", None):
        writer.add_key_length(_head_dim(config))
        writer.add_value_length(_head_dim(config))
    if spec.gemma:
        if getattr(config, "sliding_window", None):
            writer.add_sliding_window(int(config.sliding_window))
        if getattr(config, "attn_logit_softcapping", None):
            writer.add_attn_logit_softcapping(float(config.attn_logit_softcapping))
        if getattr(config, "final_logit_softcapping", None):
            writer.add_final_logit_softcapping(float(config.final_logit_softcapping))


def check_read_back(config: Any, spec: ArchSpec) -> None:
    """Refuse (``UnsupportedModel``) a model transformers' GGUF reader would not read back as
    itself: one whose :data:`READ_AS_DEFAULT` fields the reader does not map for this
    architecture differ from the family's defaults (e.g. a Qwen3 whose head_dim is not 128)."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    read = set((GGUF_CONFIG_MAPPING.get(spec.gguf_arch) or {}).values())
    defaults = type(config)(num_hidden_layers=config.num_hidden_layers,
                            hidden_size=config.hidden_size,
                            num_attention_heads=config.num_attention_heads)
    off = [f"{k}={getattr(config, k)!r} (read back as {getattr(defaults, k, None)!r})"
           for k in READ_AS_DEFAULT
           if k not in read and getattr(config, k, None) != getattr(defaults, k, None)]
    if off:
        raise UnsupportedModel(
            f"A GGUF of this {config.model_type} would not load back as the same model: "
            + "; ".join(off) + ".",
            hint="transformers' GGUF reader takes these from the family's defaults. Export "
                 "safetensors with 'selfguide export-model --format safetensors' and convert "
                 "it with llama.cpp's convert_hf_to_gguf.py.")


def _permute(w: Any, n_head: int) -> Any:
    """llama.cpp's ``LlamaModel.permute``: interleave the two rotary halves of each head."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def gguf_tensors(model: Any, spec: ArchSpec) -> Iterator[tuple[str, Any]]:
    """(GGUF name, float32 numpy array) for every tensor of the model, in order."""
    import gguf
    import torch

    config = model.config
    arch = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[spec.gguf_arch]
    names = gguf.get_tensor_name_map(arch, int(config.num_hidden_layers))
    tied = bool(getattr(config, "tie_word_embeddings", False))
    n_head = int(config.num_attention_heads)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_head)
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp (and transformers' loader) tie it when output.weight is absent
        base, _, suffix = hf_name.rpartition(".")
        name = names.get_name(base)
        if name is None:
            if "rotary_emb" in hf_name:
                continue
            raise UnsupportedModel(f"No GGUF name for tensor {hf_name!r} ({spec.gguf_arch}).")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if spec.norm_plus_one and name.endswith("_norm") and suffix == "weight":
            data = data + 1.0
        if spec.permute_qk and name.endswith(".attn_q") and suffix == "weight":
            data = _permute(data, n_head)
        elif spec.permute_qk and name.endswith(".attn_k") and suffix == "weight":
            data = _permute(data, n_kv)
        yield f"{name}.{suffix}", data


def encode_tensor(name: str, data: Any, quant: str) -> tuple[Any, Any]:
    """(array to write, raw GGML type or None) for one tensor in ``quant``."""
    import gguf
    import numpy as np

    q = gguf.GGMLQuantizationType
    if data.ndim <= 1 or quant == "f32":
        return data.astype(np.float32), None
    qtype = {"f16": q.F16, "bf16": q.BF16}.get(quant) or getattr(q, quant.upper())
    if qtype == q.F16:
        return data.astype(np.float16), None
    try:
        return gguf.quants.quantize(data, qtype), qtype
    except gguf.QuantError:  # rows not a multiple of the block size: F16, like llama.cpp
        return data.astype(np.float16), None


FILE_TYPES = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "q8_0": "MOSTLY_Q8_0",
              "q5_1": "MOSTLY_Q5_1", "q5_0": "MOSTLY_Q5_0", "q4_1": "MOSTLY_Q4_1",
              "q4_0": "MOSTLY_Q4_0"}


# --------------------------------------------------------------------------- tokenizer

def copy_tokenizer_fields(writer: Any, source_gguf: Path) -> int:
    """Copy every ``tokenizer.*`` field of an existing GGUF (vocabulary, merges, special
    ids, pre-tokenizer, chat template) into ``writer``; return how many were copied."""
    import gguf

    reader = gguf.GGUFReader(str(source_gguf))
    n = 0
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
        n += 1
    return n


def _tokenizer_kind(tok_json: dict) -> str:
    model = tok_json.get("model") or {}
    if model.get("type") != "BPE":
        raise UnsupportedModel(
            f"GGUF export writes BPE tokenizers only (this one is {model.get('type')!r}).",
            hint="Use a base model with a byte-level or sentencepiece BPE tokenizer.")
    return "llama" if model.get("byte_fallback") else "gpt2"


def write_tokenizer(writer: Any, tokenizer: Any, vocab_size: int) -> str:
    """Vocabulary, token types, merges, special ids and chat template from a Hugging Face
    tokenizer; returns the GGUF tokenizer model (``gpt2`` or ``llama``)."""
    import json

    import gguf

    with tempfile.TemporaryDirectory(prefix="sg-tok-") as d:
        tokenizer.save_pretrained(d)
        tok_json = json.loads((Path(d) / "tokenizer.json").read_text(encoding="utf-8"))
        kind = _tokenizer_kind(tok_json)
        if kind == "llama":
            vocab = gguf.LlamaHfVocab(Path(d))
            tokens, scores, types = zip(*vocab.all_tokens())
            writer.add_tokenizer_model("llama")
            writer.add_token_list(list(tokens))
            writer.add_token_scores(list(scores))
            writer.add_token_types(list(types))
        else:
            tokens, types = _bpe_tokens(tokenizer, vocab_size)
            writer.add_tokenizer_model("gpt2")
            writer.add_tokenizer_pre("default")
            writer.add_token_list(tokens)
            writer.add_token_types(types)
        special = gguf.SpecialVocab(Path(d), load_merges=kind == "gpt2", n_vocab=vocab_size)
    ids = tokenizer("a")["input_ids"]
    special.add_special_token["bos"] = bool(tokenizer.bos_token_id is not None
                                            and ids[:1] == [tokenizer.bos_token_id])
    special.add_special_token["eos"] = bool(tokenizer.eos_token_id is not None
                                            and ids[-1:] == [tokenizer.eos_token_id])
    if getattr(tokenizer, "chat_template", None) and not special.chat_template:
        special.chat_template = tokenizer.chat_template
    special.add_to_gguf(writer, quiet=True)
    return kind


def _bpe_tokens(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens by id (padded to the model's vocabulary) and their llama.cpp types."""
    import gguf

    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    tokens, types = [], []
    for i in range(vocab_size):
        if i in added:
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special
                         else gguf.TokenType.USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    return tokens, [int(t) for t in types]


# --------------------------------------------------------------------------- file

def write_gguf(model: Any, tokenizer: Any, path: str | Path, *, quant: str = "f16",
               name: str = "", license: str | None = None,
               source_gguf: Path | None = None) -> dict:
    """Write ``model`` (a merged, unquantized causal LM) and its tokenizer to ``path``.

    ``source_gguf``: the GGUF the base model was converted from, whose tokenizer fields are
    copied verbatim (exact vocabulary and pre-tokenizer for llama.cpp/Ollama).
    """
    import gguf

    if quant not in QUANTS:
        raise UnsupportedModel(f"Unknown GGUF type {quant!r}.", hint="One of: " + ", ".join(QUANTS))
    spec = arch_of(model.config)
    check_read_back(model.config, spec)
    writer = gguf.GGUFWriter(str(path), spec.gguf_arch)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name or spec.gguf_arch)
    if license:
        writer.add_license(license)
    write_hparams(writer, model.config, spec)
    writer.add_file_type(int(getattr(gguf.LlamaFileType, FILE_TYPES[quant])))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if source_gguf is not None:
        copy_tokenizer_fields(writer, source_gguf)
        tok_kind = "copied"
    else:
        tok_kind = write_tokenizer(writer, tokenizer, int(model.config.vocab_size))
    counts: dict[str, int] = {}
    for tname, data in gguf_tensors(model, spec):
        arr, raw = encode_tensor(tname, data, quant)
        writer.add_tensor(tname, arr, raw_dtype=raw)
        key = raw.name if raw is not None else str(arr.dtype)
        counts[key] = counts.get(key, 0) + 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"arch": spec.gguf_arch, "quant": quant, "tensor_types": counts,
            "tokenizer": tok_kind, "bytes": Path(path).stat().st_size}


# --------------------------------------------------------------------------- verify

def verify_gguf(path: str | Path, model: Any, tokenizer: Any, texts: Sequence[str], *,
                new_tokens: int = 8) -> dict:
    """Load ``path`` with transformers' GGUF loader; compare with ``model`` on ``texts``.

    Returns the largest absolute logit difference (same input ids into both models), the
    logits' standard deviation (for scale), the share of positions whose top token agrees,
    whether the GGUF's tokenizer encodes every text to the source tokenizer's ids, and
    ``sample``: ``new_tokens`` greedy tokens the loaded model generates after the first text.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                  dtype=torch.float32, trust_remote_code=False)
    loaded.eval()
    gtok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name,
                                         trust_remote_code=False)
    max_diff, std, agree, total, same_ids = 0.0, 0.0, 0, 0, True
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        same_ids &= gtok(text, add_special_tokens=False)["input_ids"] == ids[0].tolist()
        with torch.no_grad():
            a = model(input_ids=ids).logits.float()
            b = loaded(input_ids=ids).logits.float()
        max_diff = max(max_diff, float((a - b).abs().max()))
        std = max(std, float(a.std()))
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += ids.shape[1]
    sample = ""
    if texts and new_tokens:
        ids = gtok(texts[0], add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = loaded.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                  max_new_tokens=new_tokens, do_sample=False,
                                  pad_token_id=gtok.pad_token_id or gtok.eos_token_id)
        sample = gtok.decode(out[0, ids.shape[1]:], skip_special_tokens=False)
    return {"max_abs_diff": max_diff, "logit_std": std,
            "top1_agreement": agree / total if total else 1.0,
            "tokenizer_match": bool(same_ids), "prompts": len(texts),
            "chat_template": bool(getattr(gtok, "chat_template", None)), "sample": sample}
