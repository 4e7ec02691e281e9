"""Prompt text: the task prompt (labelling, training, evaluation) and the SELF-GUIDE
input-generation prompt.

:func:`task_prompt` is THE prompt for a task input: self-labelling (stage 2), the training
records (``prompt`` field) and evaluation all use it, so the finetuned model sees exactly
the prompt it was trained on. :func:`instruction_prompt` is the same shape for a bare
instruction (Self-Instruct rows). :func:`input_generation_prompt` builds one stage-1 prompt:
the instruction, the demos' inputs as high-quality examples, a random sample of inputs
generated so far as lower-quality examples, and (classification) the target label.

All functions are pure: plain strings in, a plain string out; randomness comes in as an
explicit ``random.Random``. Chat templates are applied later by the backend
(``backends.hf.render_prompt``), not here.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from selfguide.task import TaskSpec

INPUT_MARKER = "Input:"
OUTPUT_MARKER = "Output:"


def _block(text: str) -> str:
    return text.strip()


def task_prompt(task: TaskSpec, input_text: str) -> str:
    """Instruction + demos + the input, asking for the output.

    Example (a classification task with one demo)::

        Classify the sentiment.
        Answer with one of: positive, negative.

        Input: I loved it.
        Output: positive

        Input: Awful.
        Output:
    """
    head = _block(task.instruction)
    if task.is_classification:
        head += "\nAnswer with one of: " + ", ".join(task.labels) + "."
    parts = [head]
    for d in task.demos:
        parts.append(f"{INPUT_MARKER} {_block(d.input)}\n{OUTPUT_MARKER} {_block(d.output)}")
    parts.append(f"{INPUT_MARKER} {_block(input_text)}\n{OUTPUT_MARKER}")
    return "\n\n".join(parts)


def instruction_prompt(instruction: str, input_text: str = "") -> str:
    """A bare instruction (+ optional input), asking for the output (Self-Instruct rows)."""
    parts = [_block(instruction)]
    if input_text and input_text.strip():
        parts.append(f"{INPUT_MARKER} {_block(input_text)}")
    return "\n\n".join(parts) + f"\n{OUTPUT_MARKER}"


def sample_generated(pool: Sequence[str], rng: random.Random, lo: int, hi: int) -> list[str]:
    """A random sample of ``lo..hi`` earlier generated inputs (fewer if the pool is small)."""
    if not pool or hi <= 0:
        return []
    k = rng.randint(min(lo, len(pool)), min(hi, len(pool)))
    return rng.sample(list(pool), k) if k > 0 else []


def input_generation_prompt(task: TaskSpec, generated: Sequence[str] = (),
                            target_label: str | None = None) -> str:
    """One stage-1 prompt asking for one new input.

    Args:
        task: The task (instruction and demos).
        generated: Earlier generated inputs to show as lower-quality examples (already
            sampled by the caller, see :func:`sample_generated`).
        target_label: Classification: the label the new input's answer must have.
    """
    head = _block(task.instruction)
    lines = [
        f"Task: {head}",
        "",
        "Your job is to write one new input for this task. Here are example inputs written "
        "by an expert (high quality):",
    ]
    for d in task.demos:
        if task.is_classification:
            lines += ["", f"{INPUT_MARKER} {_block(d.input)}", f"(correct answer: {d.output})"]
        else:
            lines += ["", f"{INPUT_MARKER} {_block(d.input)}"]
    if generated:
        lines += ["", "Here are more example inputs written by a student (lower quality):"]
        for g in generated:
            lines += ["", f"{INPUT_MARKER} {_block(g)}"]
    lines.append("")
    if task.is_classification and target_label is not None:
        lines.append(f"Write one new input, different from all of the above, whose correct "
                     f"answer is \"{target_label}\". Reply with the input only.")
    else:
        lines.append("Write one new input, different from all of the above. Reply with the "
                     "input only.")
    lines.append(INPUT_MARKER)
    return "\n".join(lines)
