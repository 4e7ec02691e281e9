"""The Ollama Modelfile per family (issue 35): tokenizers carrying short versions of the real
chat templates of Llama 3, Qwen (ChatML), Gemma 2 and 3, Phi-3 and Mistral give Ollama's usual
template for that family (no BOS where llama.cpp adds it), the prompt training used, and the
family's stop tokens. No download: the templates are literals here."""

from __future__ import annotations

import pytest

from selfguide.backends.rendering import render_prompt
from selfguide.export import ollama

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")
CHATML = (  # Qwen2.5-Instruct, tools left out
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
    "helpful assistant.<|im_end|>\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if message.role == 'user' or (message.role == "
    "'assistant') %}{{- '<|im_start|>' + message.role + '\n' + message.content + "
    "'<|im_end|>' + '\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}")
GEMMA = (  # Gemma 2
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")
GEMMA3 = (  # Gemma 3: a system message opens the first user turn
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = 'model' -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}")
PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")
MISTRAL = (  # v0.1/v0.2: [INST] is plain text, no system role
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}")

# family -> (template, bos, eos, other special tokens, tokenizer adds BOS)
FAMILIES = {
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>",
               ["<|start_header_id|>", "<|end_header_id|>"], True),
    "qwen": (CHATML, None, "<|im_end|>", ["<|im_start|>", "<|endoftext|>"], False),
    "gemma": (GEMMA, "<bos>", "<eos>", ["<start_of_turn>", "<end_of_turn>"], True),
    "gemma3": (GEMMA3, "<bos>", "<eos>", ["<start_of_turn>", "<end_of_turn>"], True),
    "phi3": (PHI3, "<s>", "<|endoftext|>", ["<|user|>", "<|assistant|>", "<|end|>",
                                            "<|system|>"], False),
    "mistral": (MISTRAL, "<s>", "</s>", [], True),
}

# family -> (the Ollama template, the stop tokens), as Ollama's own library writes them
WANT = {
    "llama3": (("{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}"
               "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{{ else }}"
               "<|start_header_id|>user<|end_header_id|>\n\n{{ end }}{{ .Prompt }}<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"),
               ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]),
    "qwen": (("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n<|im_start|>user\n"
             "{{ else }}<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
             "helpful assistant.<|im_end|>\n<|im_start|>user\n{{ end }}{{ .Prompt }}"
             "<|im_end|>\n<|im_start|>assistant\n{{ .Response }}<|im_end|>"),
             ["<|im_end|>", "<|im_start|>"]),
    "gemma": (("<start_of_turn>user\n{{ .Prompt }}<end_of_turn>\n<start_of_turn>model\n"
              "{{ .Response }}<eos>"), ["<eos>", "<end_of_turn>", "<start_of_turn>"]),
    "gemma3": (("{{ if .System }}<start_of_turn>user\n{{ .System }}\n\n{{ else }}"
                "<start_of_turn>user\n{{ end }}{{ .Prompt }}<end_of_turn>\n<start_of_turn>model\n"
                "{{ .Response }}<eos>"), ["<eos>", "<end_of_turn>", "<start_of_turn>"]),
    "phi3": (("{{ if .System }}<|system|>\n{{ .System }}<|end|>\n<|user|>\n{{ else }}<|user|>\n"
             "{{ end }}{{ .Prompt }}<|end|>\n<|assistant|>\n{{ .Response }}<|endoftext|>"),
             ["<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>"]),
    "mistral": ("[INST] {{ .Prompt }} [/INST]{{ .Response }}</s>", ["</s>", "[INST]", "[/INST]"]),
}


def family_tokenizer(family: str):
    """A WordLevel tokenizer with the family's special tokens and chat template; BOS is
    prepended on encoding where the family's tokenizer does that."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    template, bos, eos, specials, add_bos = FAMILIES[family]
    names = ["<unk>", *(t for t in (bos, eos) if t), *specials]
    vocab = {t: i for i, t in enumerate(names + ["a", "hi", "review", ":"])}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if add_bos:
        tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A",
                                                          special_tokens=[(bos, vocab[bos])])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token=bos,
                                  eos_token=eos, additional_special_tokens=specials)
    tok.chat_template = template
    return tok


def stops_of(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if line.startswith("PARAMETER stop "):
            value = line[len("PARAMETER stop "):]
            out.append(value[3:-3] if value.startswith('"""') else value.strip('"'))
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_gets_its_template_and_stop_tokens(family):
    tok = family_tokenizer(family)
    assert ollama.adds_bos(tok) is FAMILIES[family][4]
    text, template = ollama.modelfile("m.gguf", tok)
    assert template == WANT[family][0]
    assert stops_of(text) == WANT[family][1]
    assert f'TEMPLATE """{template}"""' in text
    # what llama.cpp/Ollama tokenize is the prompt training used: one BOS, then the frame
    prompt = "Review: a film"
    want = render_prompt(tok, prompt, True)
    assert ollama.runtime_text(template, tok, prompt=prompt) == want + tok.eos_token
    assert want.count(tok.bos_token or "\x00") <= 1


@pytest.mark.parametrize("family", ["llama3", "qwen", "gemma3", "phi3"])
def test_a_system_prompt_renders_as_the_template_does(family):
    tok = family_tokenizer(family)
    template = ollama.modelfile("m.gguf", tok)[1]
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    want = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    sent = ollama.runtime_text(template, tok, prompt="hi", system="Be brief.")
    assert sent == want + tok.eos_token


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_turn_end_comes_from_the_template(family):
    want = {"llama3": "<|eot_id|>", "qwen": "<|im_end|>", "gemma": "<end_of_turn>",
            "gemma3": "<end_of_turn>",
            "phi3": "<|end|>", "mistral": "</s>"}[family]
    assert ollama.turn_end(family_tokenizer(family)) == want


def test_a_turn_end_that_is_plain_text_still_stops():
    tok = family_tokenizer("gemma")
    tok.chat_template = GEMMA.replace("<end_of_turn>", "<|turn_done|>")  # not a token
    text, _ = ollama.modelfile("m.gguf", tok)
    assert "<|turn_done|>" in stops_of(text)


def test_a_base_model_is_sent_plain_text():
    tok = family_tokenizer("llama3")
    text, template = ollama.modelfile("m.gguf", tok, chat=False)
    assert template == "{{ .Prompt }}{{ .Response }}<|eot_id|>"
    assert stops_of(text) == ["<|eot_id|>"]
    # llama.cpp prepends BOS, as training's plain encoding does
    assert ollama.runtime_text(template, tok, prompt="a") == "<|begin_of_text|>a<|eot_id|>"
