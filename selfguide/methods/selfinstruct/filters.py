"""Self-Instruct filters: named pure predicates that decide what joins the pool and the data.

Every filter is a pure function with its reason and source in the docstring; thresholds
come from :class:`selfguide.methods.selfinstruct.config.SelfInstructFilterConfig`. Instruction
filters look at one instruction (plus its ROUGE-L to the nearest pool entry) and return
``True`` to keep it. Instance filters look at all instances generated for one instruction
and return a keep-mask (one bool per instance). Filters annotate; they never delete: the
pipeline records one ``f_<name>`` column per filter and the first failing name as
``drop_reason``.

Source: Wang et al. 2022, "Self-Instruct: Aligning Language Models with Self-Generated
Instructions" (arXiv:2212.10560), section 2.2-2.3, and the released code
(https://github.com/yizhongw/self-instruct: ``bootstrap_instructions.py``,
``prepare_for_finetuning.py``).

Generic text checks (emptiness, word counts) are shared with the SELF-GUIDE filters
(:mod:`selfguide.methods.checks`). This module does not call models, compute ROUGE-L or write
files.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Sequence

from selfguide.methods.checks import not_empty, word_count
from selfguide.methods.selfinstruct.config import SelfInstructFilterConfig

# Order = precedence of drop reasons (cheap format checks first, then novelty).
INSTRUCTION_FILTERS = ("length", "start", "blacklist", "prefix", "rouge")
INSTANCE_FILTERS = ("instances", "output_nonempty", "not_copy", "complete", "input_length",
                    "output_length", "unique", "consistent")


# --------------------------------------------------------------------------- instructions

def keep_length(instruction: str, cfg: SelfInstructFilterConfig) -> bool:
    """Keep instructions of ``min_instruction_words``..``max_instruction_words`` words.

    Why: very short instructions are underspecified, very long ones are usually run-on
    generations. Source: Self-Instruct §2.2 ("too long or too short"); the released code
    drops ``<= 3`` or ``> 150`` whitespace-separated words (the issue asks for 3-150
    inclusive, our default).
    """
    n = word_count(instruction)
    return cfg.min_instruction_words <= n <= cfg.max_instruction_words and n > 0


def keep_start(instruction: str, cfg: SelfInstructFilterConfig | None = None) -> bool:
    """Keep instructions whose first character is ASCII and not punctuation.

    Why: such starts are list debris (``"- "``, ``"**"``, quotes) or another language.
    Source: released code, ``post_process_gpt3_response`` ("filter those starting with
    punctuation" / "non-english character").
    """
    s = instruction.strip()
    return bool(s) and s[0].isascii() and s[0] not in string.punctuation


@functools.lru_cache(maxsize=64)
def _blacklist_re(words: tuple[str, ...]) -> re.Pattern | None:
    if not words:
        return None
    alt = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alt})\b", re.IGNORECASE)


def blacklisted_word(instruction: str, cfg: SelfInstructFilterConfig) -> str | None:
    """The first blacklisted word/phrase found in ``instruction`` (whole word), or None."""
    pat = _blacklist_re(cfg.blacklist)
    m = pat.search(instruction) if pat else None
    return m.group(0) if m else None


def keep_blacklist(instruction: str, cfg: SelfInstructFilterConfig) -> bool:
    """Keep instructions with none of the blacklisted words (whole words, any case).

    Why: tasks about images, graphs, files, audio... cannot be done by a text-only model.
    Source: Self-Instruct §2.3 / released code's keyword list (image, graph, picture, file,
    map, draw, plot, go to; later versions add video, audio, music, flowchart, diagram).
    """
    return blacklisted_word(instruction, cfg) is None


def keep_prefix(instruction: str, cfg: SelfInstructFilterConfig) -> bool:
    """Keep instructions not starting with a banned prefix (case-insensitive).

    Why: the model tends to prepend "Write a program" to existing tasks, making it unclear
    whether to write code or answer. Source: released code, ``post_process_gpt3_response``.
    """
    low = instruction.strip().lower()
    return not any(low.startswith(p.lower()) for p in cfg.banned_prefixes)


def keep_rouge(nearest_score: float, cfg: SelfInstructFilterConfig) -> bool:
    """Keep an instruction whose ROUGE-L with every pool instruction is < the threshold.

    Why: near-duplicates add no diversity. Source: Self-Instruct §2.3 ("a new instruction is
    added to the task pool only when its ROUGE-L similarity with any existing instruction is
    less than 0.7").
    """
    return nearest_score < cfg.rouge_threshold


def instruction_checks(instruction: str, nearest_score: float,
                       cfg: SelfInstructFilterConfig) -> dict[str, bool]:
    """Every instruction filter's verdict, in precedence order."""
    return {
        "length": keep_length(instruction, cfg),
        "start": keep_start(instruction, cfg),
        "blacklist": keep_blacklist(instruction, cfg),
        "prefix": keep_prefix(instruction, cfg),
        "rouge": keep_rouge(nearest_score, cfg),
    }


def first_failure(checks: dict[str, bool]) -> str:
    """The first failing filter name (dict order), or "" if all pass."""
    return next((name for name, ok in checks.items() if not ok), "")


# --------------------------------------------------------------------------- instances

Instance = tuple[str, str]  # (input, output)


def keep_output_nonempty(instances: Sequence[Instance]) -> list[bool]:
    """Drop instances whose output is empty or whitespace.

    Why: nothing to learn. Source: released code, ``filter_invalid_instances``.
    """
    return not_empty([out for _, out in instances])


def keep_not_copy(instances: Sequence[Instance]) -> list[bool]:
    """Drop instances whose output repeats the input.

    Why: "instance output is a repetition of the input" (Self-Instruct §2.3).
    """
    return [inp.strip() != out.strip() for inp, out in instances]


def keep_complete(instances: Sequence[Instance]) -> list[bool]:
    """Drop instances whose input or output ends with a colon.

    Why: a trailing ``:`` marks an unfinished generation. Source: released code,
    ``filter_invalid_instances``.
    """
    return [not inp.strip().endswith(":") and not out.strip().endswith(":")
            for inp, out in instances]


def keep_input_length(instances: Sequence[Instance],
                      cfg: SelfInstructFilterConfig) -> list[bool]:
    """Drop instances whose input has more than ``max_input_words`` words.

    Why: overlong inputs are mostly degenerate repetition (Self-Instruct §2.3 heuristics).
    """
    return [word_count(inp) <= cfg.max_input_words for inp, _ in instances]


def keep_output_length(instances: Sequence[Instance],
                       cfg: SelfInstructFilterConfig) -> list[bool]:
    """Drop instances whose output has more than ``max_output_words`` words.

    Why: as for inputs; also keeps training rows within the context budget.
    """
    return [word_count(out) <= cfg.max_output_words for _, out in instances]


def keep_unique(instances: Sequence[Instance]) -> list[bool]:
    """Keep only the first of identical (input, output) instances.

    Why: "we filter out instances that are exactly the same" (Self-Instruct §2.3).
    """
    seen: set[Instance] = set()
    mask = []
    for inp, out in instances:
        key = (inp.strip(), out.strip())
        mask.append(key not in seen)
        seen.add(key)
    return mask


def keep_consistent(instances: Sequence[Instance], cfg: SelfInstructFilterConfig) -> list[bool]:
    """Drop instances whose non-empty input also appears with a different output.

    Why: contradictory labels for one input ("those with the same input but different
    outputs", Self-Instruct §2.3). With ``conflict_scope="task"`` (the released code's
    ``filter_duplicate_instances``) any conflict drops every instance of the instruction.
    """
    outputs: dict[str, set[str]] = {}
    for inp, out in instances:
        if inp.strip():
            outputs.setdefault(inp.strip(), set()).add(out.strip())
    bad = {inp for inp, outs in outputs.items() if len(outs) > 1}
    if cfg.conflict_scope == "task" and bad:
        return [False] * len(instances)
    return [inp.strip() not in bad for inp, _ in instances]


def instance_checks(instances: Sequence[Instance],
                    cfg: SelfInstructFilterConfig) -> list[dict[str, bool]]:
    """Every instance filter's verdict per instance, in precedence order."""
    masks = {
        "output_nonempty": keep_output_nonempty(instances),
        "not_copy": keep_not_copy(instances),
        "complete": keep_complete(instances),
        "input_length": keep_input_length(instances, cfg),
        "output_length": keep_output_length(instances, cfg),
        "unique": keep_unique(instances),
        "consistent": keep_consistent(instances, cfg),
    }
    return [{"instances": True, **{k: m[i] for k, m in masks.items()}}
            for i in range(len(instances))]
