"""``export-model``: GGUF (+ Ollama Modelfile, model card) of a run's merged model, loaded
back with transformers' GGUF loader and compared with the merged model; safetensors with a
card; safe destinations. Tiny models built in code, plus one run on the embedded model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sgtest.exports import _fake_eval, _report
from sgtest.training import make_run

from selfguide import cli
from selfguide.export import ollama

VALID_INSTRUCTIONS = {"FROM", "ADAPTER", "TEMPLATE", "SYSTEM", "PARAMETER", "LICENSE",
                      "MESSAGE", "REQUIRES"}


def fake_adapter(run: Path, model_ref: str, *, seed: int = 0) -> None:
    """A LoRA adapter with random (non-zero) weights saved as training saves one: the merge
    then really changes the model, without spending test time on training."""
    import torch
    from peft import LoraConfig, get_peft_model

    from selfguide.models import loading as models
    from selfguide.models.adapters import save_adapter
    from selfguide.settings.fields import ModelConfig

    lm = models.load_model(ModelConfig(model=model_ref, precision="fp32"))
    torch.manual_seed(seed)
    peft = get_peft_model(lm.model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():  # a small update, the size a short training run makes
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    save_adapter(peft, lm.tokenizer, run / "train" / "adapter",
                 {"base_fingerprint": lm.info.fingerprint, "model": model_ref, "chat": True,
                  "method": "lora", "train_config": {"method": "lora", "lora_r": 4,
                                                     "lora_alpha": 8}})


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """(instruction, argument) pairs under Ollama's Modelfile grammar: one instruction per
    line (case-insensitive), ``#`` comments, triple-quoted multi-line arguments."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        cmd, _, arg = line.partition(" ")
        assert cmd.upper() in VALID_INSTRUCTIONS, cmd
        arg = arg.strip()
        if arg.startswith('"""'):
            body = arg[3:]
            while '"""' not in body:
                body += "\n" + lines[i]
                i += 1
            assert body.endswith('"""'), "text after a closing triple quote"
            arg = body[:-3]
        out.append((cmd.upper(), arg))
    return out


def check_modelfile(folder: Path, tokenizer, prompt: str) -> dict:
    """What ``ollama create`` checks: FROM names an existing GGUF file, parameters are known
    with values of their type; and the template sends the prompt the model trained on."""
    from selfguide.backends.rendering import render_prompt

    entries = parse_modelfile((folder / "Modelfile").read_text())
    kinds = [k for k, _ in entries]
    assert kinds.count("FROM") == 1 and kinds.count("TEMPLATE") == 1
    src = dict(entries)["FROM"]
    assert src.startswith("./") and (folder / src[2:]).is_file()
    assert (folder / src[2:]).read_bytes()[:4] == b"GGUF"
    params: dict[str, list] = {}
    for k, v in entries:
        if k == "PARAMETER":
            name, _, value = v.partition(" ")
            value = value.strip()
            value = value[3:-3] if value.startswith('"""') else value.strip('"')
            params.setdefault(name, []).append(ollama.PARAMETERS[name](value))
    template = dict(entries)["TEMPLATE"]
    assert template.count("{{") == template.count("}}")
    want = render_prompt(tokenizer, prompt, True)
    rendered = ollama.runtime_text(template, tokenizer, prompt=prompt)
    assert rendered == want + tokenizer.eos_token   # the prompt, then the trained-on EOS
    assert params["temperature"] == [0.0] and tokenizer.eos_token in params["stop"]
    return params


@pytest.mark.slow
def test_export_gguf_tiny_loads_back_and_matches(workspace, tiny_bpe_model_dir, tmp_path,
                                                 capsys):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfguide.export.model import demo_texts, merged_model

    run = make_run(workspace, tiny_bpe_model_dir, "g", n=4)
    _report(run)
    _fake_eval(run, after=0.75, before=0.25)
    fake_adapter(run, str(tiny_bpe_model_dir))
    out = tmp_path / "gguf"
    assert cli.main(["export-model", "--run", "g", "--out", str(out), "--quant", "f32"]) == 0
    printed = capsys.readouterr().out
    assert "verified with transformers" in printed and "tokenizer matches" in printed
    summary = json.loads((out / "export.json").read_text())
    v = summary["verify"]
    assert v["max_abs_diff"] < 1e-4 and v["top1_agreement"] == 1.0 and v["tokenizer_match"]
    assert summary["gguf"]["arch"] == "llama" and summary["gguf"]["tokenizer"] == "gpt2"

    # independently: transformers' GGUF loader vs the merged model, logits on a few prompts
    model, tok, _ = merged_model(run)
    base = AutoModelForCausalLM.from_pretrained(tiny_bpe_model_dir)
    loaded = AutoModelForCausalLM.from_pretrained(str(out), gguf_file="g-f32.gguf")
    gtok = AutoTokenizer.from_pretrained(str(out), gguf_file="g-f32.gguf")
    import torch

    for text in demo_texts(run, tok, True):
        ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        assert gtok(text, add_special_tokens=False)["input_ids"] == ids[0].tolist()
        with torch.no_grad():
            a, b = model(input_ids=ids).logits, loaded(input_ids=ids).logits
            c = base(input_ids=ids).logits
        assert (a - b).abs().max() < 1e-4
        assert (a - c).abs().max() > 1e-3  # the adapter was merged in, not the bare base
    assert gtok.chat_template == tok.chat_template
    gen = loaded.generate(input_ids=ids, max_new_tokens=4, do_sample=False,
                          pad_token_id=gtok.pad_token_id)
    assert gen.shape[1] == ids.shape[1] + 4

    params = check_modelfile(out, tok, "is this movie positive or negative")
    assert "<|assistant|>" in params["stop"] or "<|user|>" in params["stop"]
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "gguf" and "gguf" in card.data.tags
    assert card.data.eval_results[0].metric_value == 75.0   # from eval/metrics.json
    assert "| exact match (task metric) | 25.0 | 75.0 | +50.0 |" in card.text
    assert "ollama create g -f Modelfile" in card.text

    # a non-empty destination is refused without --force and replaced with it
    assert cli.main(["export-model", "--run", "g", "--out", str(out), "--quant", "q8_0"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert cli.main(["export-model", "--run", "g", "--out", str(out), "--quant", "q8_0",
                     "--force", "--verify", "false"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "README.md", "export.json",
                                                     "g-q8_0.gguf"]
    assert not list(tmp_path.glob(".gguf.*"))  # no temp or old folder left behind


@pytest.mark.slow
@pytest.mark.parametrize("quant,max_rel", [("f16", 0.01), ("q8_0", 0.1), ("q4_0", 1.0)])
def test_gguf_quantisation_tolerance(tiny_bpe_model_dir, tmp_path, quant, max_rel):
    """Logit error grows with the quantisation, within its tolerance (relative to the
    logits' spread)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfguide.export import gguf as gguf_export
    model = AutoModelForCausalLM.from_pretrained(tiny_bpe_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_bpe_model_dir)
    path = tmp_path / f"m-{quant}.gguf"
    info = gguf_export.write_gguf(model, tok, path, quant=quant)
    assert info["tensor_types"].get("float32") == 5  # the norms stay f32
    v = gguf_export.verify_gguf(path, model, tok, ["the cat sat on the mat",
                                                    "hello world how are you today"],
                                new_tokens=2)
    assert v["max_abs_diff"] / v["logit_std"] < max_rel, v
    assert v["tokenizer_match"]


def test_qwen2_architecture_round_trips(tmp_path, tiny_model_builder):
    """A second architecture (q/k/v biases, tied embeddings, no Q/K permutation)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from selfguide.export import gguf as gguf_export
    tok_dir = tiny_model_builder(tmp_path / "tok", bpe=True)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=128, tie_word_embeddings=True,
                      bos_token_id=2, eos_token_id=3, pad_token_id=1)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    path = tmp_path / "q.gguf"
    assert gguf_export.write_gguf(model, tok, path, quant="f32")["arch"] == "qwen2"
    v = gguf_export.verify_gguf(path, model, tok, ["the dog ran in the park"], new_tokens=0)
    assert v["max_abs_diff"] < 1e-4


def test_unsupported_architecture_and_destinations(tmp_path):
    from types import SimpleNamespace

    from selfguide.errors import OutputPathError, UnsupportedModel
    from selfguide.export import gguf as gguf_export
    from selfguide.export.model import check_destination

    with pytest.raises(UnsupportedModel, match="gpt2"):
        gguf_export.arch_of(SimpleNamespace(model_type="gpt2"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError):
        check_destination(tmp_path / "file", force=True)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OutputPathError, match="link"):
        check_destination(tmp_path / "link", force=True)
    with pytest.raises(OutputPathError, match="--force"):
        check_destination(tmp_path / "real")
    assert check_destination(tmp_path / "real", force=True) == tmp_path / "real"
    assert check_destination(tmp_path / "new") == tmp_path / "new"


def test_ollama_template_frames_and_system_branch(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    frame = ollama.chat_frame(tok)
    assert frame["prefix"] == "<|user|> " and frame["suffix"] == " <|assistant|>"
    t = ollama.go_template(frame, "</s>")
    assert ollama.render_template(t, prompt="hi") == "<|user|> hi <|assistant|></s>"
    assert "{{ if .System }}" in t  # the tiny template renders a system turn
    sys_text = ollama.render_template(t, prompt="hi", system="be brief")
    assert sys_text == tok.apply_chat_template(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        tokenize=False, add_generation_prompt=True) + "</s>"
    plain = ollama.go_template(ollama.chat_frame(tok, chat=False), "</s>")
    assert ollama.render_template(plain, prompt="x") == "x</s>"
    assert ollama.render_template('{{ "{{" }} {{- " a" }}', prompt="") == "{{ a"
    assert re.search(r"FROM \./m\.gguf", ollama.modelfile("m.gguf", tok)[0])


@pytest.mark.slow
def test_export_gguf_embedded_model(workspace, tmp_path):
    """The embedded SmolLM2 (llama architecture): merged, written as q8_0 with the original
    GGUF's tokenizer, loaded back by transformers, generates, and matches the merged model."""
    import gguf

    run = make_run(workspace, Path("embedded"), "emb", n=4)
    fake_adapter(run, "embedded")
    out = tmp_path / "emb"
    from selfguide.export.model import export_model

    s = export_model(run, out, quant="q8_0")
    v = s["verify"]
    assert s["gguf"]["tokenizer"] == "copied" and v["tokenizer_match"] and v["chat_template"]
    assert v["top1_agreement"] >= 0.85 and v["max_abs_diff"] / v["logit_std"] < 0.3, v
    assert v["sample"].strip()  # it generates
    reader = gguf.GGUFReader(str(out / "emb-q8_0.gguf"))
    assert reader.fields["tokenizer.ggml.pre"].contents() == "smollm"
    assert reader.fields["general.license"].contents() == "apache-2.0"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out), gguf_file="emb-q8_0.gguf")
    params = check_modelfile(out, tok, "Decide the sentiment.")
    assert "<|im_end|>" in params["stop"]
    text = (out / "Modelfile").read_text()
    assert ("<|im_start|>user\n{{ end }}{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"
            "{{ .Response }}<|im_end|>") in text
    assert "You are a helpful AI assistant named SmolLM" in text  # the default system turn
    assert 'LICENSE """apache-2.0"""' in text
    print(json.dumps({k: v[k] for k in ("max_abs_diff", "logit_std", "top1_agreement")}))
