"""SELF-GUIDE's stage-1 prompt: asking the model for one new input of the task.

:func:`input_generation_prompt` builds one stage-1 prompt: the instruction, the demos'
inputs as high-quality examples, a random sample of inputs generated so far as
lower-quality examples (:func:`sample_generated`), and (classification) the target label,
laid out as a plain few-shot list for the model to continue; classification lists only
inputs of the target label by default (``form="by_label"``). :func:`with_passage` grounds
a prompt in a passage of the user's documents.

Pure: plain strings in, a plain string out; randomness comes in as an explicit
``random.Random``. The labelling prompt is THE task prompt (:func:`selfguide.task.prompts.task_prompt`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from selfguide.task.prompts import ANSWER_MARKER, INPUT_MARKER
from selfguide.task.spec import TaskSpec


def _block(text: str) -> str:
    return text.strip()


def sample_generated(pool: Sequence[str], rng: random.Random, lo: int, hi: int) -> list[str]:
    """A random sample of ``lo..hi`` earlier generated inputs (fewer if the pool is small)."""
    if not pool or hi <= 0:
        return []
    k = rng.randint(min(lo, len(pool)), min(hi, len(pool)))
    return rng.sample(list(pool), k) if k > 0 else []


def with_passage(prompt: str, task: TaskSpec, passage: str) -> str:
    """A stage-1 prompt grounded in one of the user's passages (issue 36): the passage,
    quoted after the prompt's first block (the instruction and, for classification, the
    possible answers), and a line asking for inputs about it; the example list to continue
    stays last."""
    if not passage:
        return prompt
    head, sep, rest = prompt.partition("\n\n")
    return (f"{head}\n\nBackground text:\n\"\"\"\n{passage.strip()}\n\"\"\"\n"
            f"New inputs are about the background text.{sep}{rest}")


def input_generation_prompt(task: TaskSpec, generated: Sequence[str | tuple[str, str]] = (),
                            target_label: str | None = None, form: str = "mixed") -> str:
    """One stage-1 prompt asking for one new input, as a plain few-shot continuation.

    Small instruct models follow a list they can continue far better than a meta-request
    ("write a new input..."), so the prompt is the instruction followed by example inputs
    and ends with an open ``Input:``. Earlier generated inputs (lower quality) come first,
    the demos (high quality) last, closest to the new input. Classification puts the
    answer *before* each input (output-first, as Self-Instruct does for classification)
    and ends with ``Answer: <target>`` + ``Input:``, so the new input is written for the
    target label.

    Args:
        task: The task (instruction and demos).
        generated: Earlier generated inputs to show (already sampled by the caller, see
            :func:`sample_generated`); for classification ``(input, target_label)`` pairs.
        target_label: Classification: the label the new input's answer must have.
        form: Classification: ``mixed`` (above) or ``by_label`` (:func:`_by_label`).
    """
    head = _block(task.instruction)
    if task.is_classification and form == "by_label":
        return _by_label(task, generated, target_label)
    if task.is_classification:
        head += "\nPossible answers: " + ", ".join(task.labels) + "."
        blocks = [head]
        for g in generated:
            text, lab = g if isinstance(g, tuple) else (g, "")
            blocks.append(f"{ANSWER_MARKER} {lab}\n{INPUT_MARKER} {_block(text)}" if lab
                          else f"{INPUT_MARKER} {_block(text)}")
        for d in task.demos:
            blocks.append(f"{ANSWER_MARKER} {d.output}\n{INPUT_MARKER} {_block(d.input)}")
        target = target_label if target_label is not None else task.labels[0]
        blocks.append(f"{ANSWER_MARKER} {target}\n{INPUT_MARKER}")
        return "\n\n".join(blocks)
    blocks = [head]
    for g in generated:
        text = g[0] if isinstance(g, tuple) else g
        blocks.append(f"{INPUT_MARKER} {_block(text)}")
    for d in task.demos:
        blocks.append(f"{INPUT_MARKER} {_block(d.input)}")
    blocks.append(INPUT_MARKER)
    return "\n\n".join(blocks)


def _by_label(task: TaskSpec, generated: Sequence[str | tuple[str, str]],
              target_label: str | None) -> str:
    """A list of inputs whose answer is the target label, to continue.

    The instruction, then ``Inputs whose answer is "<target>":`` and one ``Input:`` line per
    example of that label (earlier generated inputs written for it first, its demos last),
    ending with an open ``Input:``. No other label's examples: the embedded 135M model
    copies the topic of whatever example stands last, so a mixed list pulls its new inputs
    towards other labels (bench/README.md "Synthesis"). A label without demos is preceded
    by the other labels' demos, each under its own heading, so the model still sees the task.
    """
    target = target_label if target_label is not None else task.labels[0]
    head = _block(task.instruction) + "\nPossible answers: " + ", ".join(task.labels) + "."
    blocks = [head]
    own = _inputs_of(task, target)
    if not own:  # the other labels' demos (the target has none)
        for lab in task.labels:
            if demos := _inputs_of(task, lab):
                blocks.append(_section(lab, demos, open_end=False))
    shown = [g[0] if isinstance(g, tuple) else g for g in generated]
    blocks.append(_section(target, shown + own, open_end=True))
    return "\n\n".join(blocks)


def _inputs_of(task: TaskSpec, label: str) -> list[str]:
    """The demo inputs whose answer is ``label`` (case and surrounding space ignored)."""
    key = label.strip().casefold()
    return [d.input for d in task.demos if d.output.strip().casefold() == key]


def _section(label: str, inputs: Sequence[str], *, open_end: bool) -> str:
    lines = [f'Inputs whose answer is "{label}":']
    lines += [f"{INPUT_MARKER} {_block(x)}" for x in inputs]
    if open_end:
        lines.append(INPUT_MARKER)
    return "\n".join(lines)
