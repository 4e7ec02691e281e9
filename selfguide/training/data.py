"""Training rows as token ids: THE prompt format plus the completion, loss on the answer.

What it does: tokenizes each record as ``render_prompt(prompt) + completion + eos``
(:func:`encode_record`) with the prompt tokens labelled -100, so training sees exactly the
prompt evaluation uses; writes a classification label after a space when that takes fewer
tokens (:func:`completion_prefix`: "sports" is "s" + "ports" to the embedded model's
tokenizer, " sports" one token); reports rows longer than ``max_length`` instead of cutting them
silently (:func:`build_features`); right-pads batches (:class:`PadCollator`).

What it does not do: check the dataset or run the trainer (:mod:`selfguide.training.trainer`,
:mod:`selfguide.training.loop`). torch is imported inside functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from selfguide.errors import DatasetError

IGNORE_INDEX = -100


@dataclass
class Features:
    rows: list[dict]                       # input_ids, labels, attention_mask
    long_rows: list[dict] = field(default_factory=list)   # id, tokens (over the limit)
    prompt_tokens: int = 0
    completion_tokens: int = 0


def completion_prefix(tokenizer: Any, records: Sequence[dict]) -> str:
    """``" "`` when the rows are classification labels (every record has a ``label``) that
    take fewer tokens in all written after a space than bare; ``""`` otherwise.

    A label the tokenizer splits at a word's start ("sports" = "s" + "ports") is an
    unlikely first answer token for the model, and a few dozen rows did not teach the
    embedded model to write it (bench/README.md "Stage-1 quotas / data size"); after a space
    every label of the shipped tasks is one token. Answers are stripped when scored, so the
    labels stay as written.
    """
    labels = {str(r.get("completion", "")) for r in records}
    if not records or not all(r.get("label") for r in records) or not all(labels):
        return ""

    def count(texts: Any) -> int:
        return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)

    return " " if count(" " + x for x in labels) < count(labels) else ""


def encode_record(tokenizer: Any, record: dict, *, chat: bool, prefix: str = ""
                  ) -> tuple[list[int], list[int]]:
    """Token ids of the rendered prompt and of ``prefix + completion + eos``.

    The prompt goes through ``backends.rendering.encode_prompt`` - the very ids the generator feeds
    the model at evaluation - and the completion is tokenized without special tokens.
    """
    from selfguide.backends.rendering import encode_prompt

    p_ids = encode_prompt(tokenizer, record["prompt"], chat)
    c_ids = tokenizer(prefix + record["completion"], add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        c_ids = [*c_ids, tokenizer.eos_token_id]
    return list(p_ids), list(c_ids)


def build_features(tokenizer: Any, records: Sequence[dict], *, chat: bool, max_length: int,
                   long_rows: str = "drop", prefix: str = "") -> Features:
    """Tokenize records with prompt tokens masked (label -100); report over-long rows."""
    feats = Features(rows=[])
    for r in records:
        p_ids, c_ids = encode_record(tokenizer, r, chat=chat, prefix=prefix)
        total = len(p_ids) + len(c_ids)
        if total > max_length:
            feats.long_rows.append({"id": r.get("id"), "tokens": total})
            if long_rows == "error":
                raise DatasetError(f"Row {r.get('id')!r} has {total} tokens, more than "
                                   f"max_length={max_length}.",
                                   hint="Raise --max-length or set --long-rows drop.")
            if long_rows == "drop" or len(c_ids) >= max_length:
                continue
            p_ids = p_ids[total - max_length:]  # cut the prompt's start, keep the answer
        feats.prompt_tokens += len(p_ids)
        feats.completion_tokens += len(c_ids)
        feats.rows.append({"input_ids": p_ids + c_ids,
                           "labels": [IGNORE_INDEX] * len(p_ids) + c_ids,
                           "attention_mask": [1] * (len(p_ids) + len(c_ids))})
    return feats


class PadCollator:
    """Right-pad ``input_ids`` (pad id), ``labels`` (-100) and ``attention_mask`` (0)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        n = max(len(b["input_ids"]) for b in batch)

        def pad(key: str, value: int) -> Any:
            return torch.tensor([b[key] + [value] * (n - len(b[key])) for b in batch])

        return {"input_ids": pad("input_ids", self.pad_id), "labels": pad("labels", IGNORE_INDEX),
                "attention_mask": pad("attention_mask", 0)}
