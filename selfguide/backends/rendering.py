"""THE prompt format shared by generation, training, evaluation and exports.

What it does: :func:`render_prompt` turns a user prompt into the exact model input text
(the chat template when asked and available), :func:`encode_prompt` tokenizes it the way
the generator does, :func:`cut_at_stop` cuts a completion at its first stop string.

What it does not do: load models or generate. Importing it is cheap (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_prompt(tokenizer: Any, text: str, chat: bool) -> str:
    """The exact model input text for a user prompt.

    With ``chat`` and a tokenizer that has a chat template: ``text`` as one user message with
    the generation prompt appended. Otherwise ``text`` unchanged. Tokenize the result with
    :func:`encode_prompt` (no extra special tokens for chat text, which already has them).
    """
    if chat and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                             tokenize=False, add_generation_prompt=True)
    return text


def uses_chat(tokenizer: Any, chat: bool) -> bool:
    """Whether :func:`render_prompt` applies the chat template for this tokenizer."""
    return bool(chat and getattr(tokenizer, "chat_template", None))


def chat_for(generator: Any, chat: bool) -> bool:
    """Whether prompts to ``generator`` can take chat form: off for a model whose tokenizer
    has no chat template (a base model, where "chat form" is plain text again); a backend
    without a local tokenizer (a server) keeps ``chat``."""
    tok = getattr(generator, "tokenizer", None)
    return bool(chat) and (tok is None or uses_chat(tok, True))


def encode_prompt(tokenizer: Any, text: str, chat: bool) -> list[int]:
    """Token ids of ``render_prompt(tokenizer, text, chat)``.

    Chat-rendered text already contains its special tokens (BOS etc.), so none are added;
    plain text gets the tokenizer's usual special tokens.
    """
    rendered = render_prompt(tokenizer, text, chat)
    return list(tokenizer(rendered, add_special_tokens=not uses_chat(tokenizer, chat))["input_ids"])


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any stop string."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if 0 <= i < cut:
                cut = i
    return text[:cut]
