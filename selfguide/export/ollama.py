"""An Ollama ``Modelfile`` for an exported GGUF: the prompt template the model was trained
on, its stop tokens and decoding parameters.

What it does: :func:`chat_frame` renders the tokenizer's (Jinja) chat template around
sentinel strings to find the text before and after the user's turn -- exactly what training
sees, a default system prompt included -- and, when the template has one, the system
turn's frame, and what it writes after an answer (:func:`turn_end`). A leading BOS is left
out when the tokenizer adds BOS itself (the GGUF says ``add_bos_token``, so llama.cpp and
Ollama prepend it: :func:`runtime_text` is what they tokenize). The same code serves every
family; the tests hold it to Llama 3, ChatML (Qwen), Gemma, Phi-3 and Mistral templates. :func:`go_template` writes that as an Ollama (Go) template over ``.System``,
``.Prompt`` and ``.Response``, ending with the end-of-sequence token training appends;
:func:`render_template` evaluates that small template language, so the export checks the
template reproduces the training prompt before writing it. :func:`modelfile` assembles
``FROM``, ``TEMPLATE``, ``PARAMETER`` (stop: :func:`stop_tokens`; temperature 0 as
evaluation decodes; num_ctx)
and ``LICENSE``.

What it does not do: run Ollama (``ollama create NAME -f Modelfile`` does), or translate
arbitrary Jinja: multi-turn history is not templated, as the model is trained on one turn.
"""

from __future__ import annotations

import re
from typing import Any

from selfguide.errors import UnsupportedModel

_S, _U, _R = "\x00SYSTEM\x00", "\x00PROMPT\x00", "\x00RESPONSE\x00"
PARAMETERS = {"num_ctx": int, "repeat_last_n": int, "repeat_penalty": float,
              "temperature": float, "seed": int, "stop": str, "num_predict": int,
              "top_k": int, "top_p": float, "min_p": float}


def _render(tokenizer: Any, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def chat_frame(tokenizer: Any, chat: bool = True) -> dict:
    """``{"prefix", "suffix", "system": (before, after) | None}`` around the user's text."""
    if not (chat and getattr(tokenizer, "chat_template", None)):
        return {"prefix": "", "suffix": "", "system": None, "turn_end": None}
    text = _render(tokenizer, [{"role": "user", "content": _U}])
    if text.count(_U) != 1:
        raise UnsupportedModel("The chat template does not show the user's message once.")
    prefix, suffix = text.split(_U)
    system = None
    try:
        with_sys = _render(tokenizer, [{"role": "system", "content": _S},
                                       {"role": "user", "content": _U}])
    except Exception:  # noqa: BLE001 - templates may raise for a system role (jinja exception)
        with_sys = ""
    if with_sys.count(_S) == 1 and with_sys.endswith(_U + suffix):
        before, rest = with_sys.split(_S)
        system = (_drop_bos(tokenizer, before), rest[: -len(_U + suffix)])
    return {"prefix": _drop_bos(tokenizer, prefix), "suffix": suffix, "system": system,
            "turn_end": turn_end(tokenizer)}


def adds_bos(tokenizer: Any) -> bool:
    """Whether encoding plain text prepends BOS: the exported GGUF then says
    ``add_bos_token`` and llama.cpp/Ollama prepend it to every prompt themselves."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return bos is not None and tokenizer("a")["input_ids"][:1] == [bos]


def _drop_bos(tokenizer: Any, text: str) -> str:
    """``text`` without a leading BOS the runtime adds itself (Llama 3, Gemma and Mistral
    templates start with ``bos_token``; kept, the model would see two)."""
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos) and adds_bos(tokenizer):
        return text[len(bos):]
    return text


def runtime_text(template: str, tokenizer: Any, *, prompt: str, system: str = "") -> str:
    """The text the runtime tokenizes for ``prompt``: the rendered template, after the BOS
    llama.cpp/Ollama prepend when the GGUF says ``add_bos_token``."""
    head = tokenizer.bos_token if adds_bos(tokenizer) else ""
    return head + render_template(template, prompt=prompt, system=system)


def turn_end(tokenizer: Any) -> str | None:
    """What the chat template writes right after an answer (``<|im_end|>``,
    ``<end_of_turn>``, ``<|eot_id|>``, ``<|end|>``, ``</s>``): its first special token, or
    its first line; None without a template or when it writes nothing there."""
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": _U},
                                              {"role": "assistant", "content": _R}],
                                             tokenize=False)
    except Exception:  # noqa: BLE001 - a template may refuse an assistant turn
        return None
    if text.count(_R) != 1:
        return None
    after = text.split(_R)[1].lstrip()
    found = [t for t in _specials(tokenizer) if t and after.startswith(t)]
    if found:
        return max(found, key=len)
    line = after.split("\n", 1)[0].strip()
    return line if 0 < len(line) <= 32 else None


def _lit(text: str) -> str:
    """Literal template text; ``{{`` cannot appear raw in a Go template."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(frame: dict, eos: str | None) -> str:
    """The Ollama template: optional system frame, the prompt frame, the response, EOS."""
    end = eos or ""
    if frame["system"]:
        before, after = frame["system"]
        head = (f"{{{{ if .System }}}}{_lit(before)}{{{{ .System }}}}{_lit(after)}"
                f"{{{{ else }}}}{_lit(frame['prefix'])}{{{{ end }}}}")
    else:
        head = _lit(frame["prefix"])
    return f"{head}{{{{ .Prompt }}}}{_lit(frame['suffix'])}{{{{ .Response }}}}{_lit(end)}"


_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def render_template(template: str, *, prompt: str, system: str = "", response: str = "") -> str:
    """Evaluate the subset of Go templates :func:`go_template` writes (``.System``,
    ``.Prompt``, ``.Response``, ``if .X``/``else``/``end``, string literals, ``-`` trims)."""
    values = {".System": system, ".Prompt": prompt, ".Response": response}
    out: list[str] = []
    stack: list[bool] = []  # whether the current branch is being emitted
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        if m.group(1):
            text = text.rstrip()
        if all(stack):
            out.append(text)
        pos = m.end()
        action = m.group(2)
        if action.startswith("if "):
            stack.append(bool(values.get(action[3:].strip(), "")))
        elif action == "else":
            stack[-1] = not stack[-1]
        elif action == "end":
            stack.pop()
        elif action in values:
            if all(stack):
                out.append(values[action])
        elif action.startswith('"') and action.endswith('"'):
            if all(stack):
                out.append(action[1:-1])
        else:
            raise ValueError(f"unsupported template action {{{{ {action} }}}}")
        if m.group(3):
            rest = template[pos:]
            pos += len(rest) - len(rest.lstrip())
    if stack:
        raise ValueError("unbalanced if/end in the template")
    out.append(template[pos:])
    return "".join(out)


def _quote(value: str) -> str:
    if '"""' in value:
        raise UnsupportedModel('A Modelfile value cannot contain """.')
    return f'"""{value}"""'


def _specials(tokenizer: Any) -> list[str]:
    """The tokenizer's special tokens, longest first."""
    found = set(getattr(tokenizer, "all_special_tokens", []) or []) | {
        t.content for t in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).values()
        if getattr(t, "special", False)}
    return sorted((t for t in found if t), key=lambda t: (-len(t), t))


def _marker(piece: str) -> str | None:
    """A turn marker written as plain text (Mistral v0.1's ``[INST]``): the whole piece
    when it is one short word."""
    word = piece.strip()
    return word if word and len(word) <= 16 and not any(c.isspace() for c in word) else None


def stop_tokens(tokenizer: Any, frame: dict) -> list[str]:
    """EOS, the template's own end of an answer, the special tokens that open or close a
    turn in the template, and turn markers written as plain text (deduplicated)."""
    specials = _specials(tokenizer)
    stops = [tokenizer.eos_token or "", frame.get("turn_end") or ""]
    for piece in (frame["prefix"], frame["suffix"]):
        hits = [t for t in specials if t in piece and t != tokenizer.bos_token]
        stops += hits or [_marker(piece) or ""]
    return list(dict.fromkeys(s for s in stops if s.strip()))


def modelfile(gguf_file: str, tokenizer: Any, *, chat: bool = True, context_length: int = 2048,
              license: str | None = None, run: str = "") -> tuple[str, str]:
    """(Modelfile text, its template) for ``gguf_file`` (a path relative to the Modelfile)."""
    frame = chat_frame(tokenizer, chat)
    template = go_template(frame, tokenizer.eos_token)
    lines = [f"# Ollama Modelfile for selfguide run {run!r}: ollama create NAME -f Modelfile",
             f"FROM ./{gguf_file}", f"TEMPLATE {_quote(template)}"]
    for stop in stop_tokens(tokenizer, frame):
        lines.append(f'PARAMETER stop "{stop}"' if '"' not in stop and " " not in stop
                     else f"PARAMETER stop {_quote(stop)}")
    lines += ["PARAMETER temperature 0", f"PARAMETER num_ctx {min(int(context_length), 4096)}"]
    if license:
        lines.append(f"LICENSE {_quote(license)}")
    return "\n".join(lines) + "\n", template
