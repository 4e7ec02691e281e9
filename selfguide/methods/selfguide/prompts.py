"""SELF-GUIDE's stage-1 prompt: asking the model for one new input of the task.

:func:`input_generation_prompt` builds one stage-1 prompt: the instruction, the demos'
inputs as high-quality examples, a random sample of inputs generated so far as
lower-quality examples (:func:`sample_generated`), and (classification) the target label,
laid out as a plain few-shot list for the model to continue; classification lists only
inputs of the target label by default (``form="by_label"``). :func:`passage_start` and
:func:`with_passage` ground a new input in a passage of the user's documents.

Pure: plain strings in, a plain string out; randomness comes in as an explicit
``random.Random``. The labelling prompt is THE task prompt (:func:`selfguide.task.prompts.task_prompt`).
"""

from __future__ import annotations

import random
import re
import statistics
from collections.abc import Sequence

from selfguide.task.prompts import ANSWER_MARKER, INPUT_MARKER
from selfguide.task.spec import TaskSpec
from selfguide.task.structure import InputTemplate


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
    quoted right before the open ``Input:`` the model continues (after the examples), with
    a line saying the next input is about it. Placed earlier (after the instruction), the
    embedded model continued from the examples and ignored it (bench/README.md)."""
    if not passage:
        return prompt
    body, marker, tail = prompt.rpartition(INPUT_MARKER)
    if not marker:
        body, tail = prompt, ""
    return (f"{body.rstrip()}\n\nBackground text:\n\"\"\"\n{passage.strip()}\n\"\"\"\n"
            f"The next input is about the background text.\n{INPUT_MARKER}{tail}")


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def passage_start(template: InputTemplate, demos: Sequence[str], passage: str,
                  rng: random.Random) -> str:
    """The start of a new input whose first field comes from the user's passage (issue 36).

    For demos whose inputs open with a field marker followed by more fields (``Premise: …
    Hypothesis: …``, ``Sentence: … Question: …``), the first field is a stretch of whole
    sentences of one paragraph of ``passage``, about as long as the demos' first fields
    (their median in words; at most twice the longest, a sentence that fits preferred to one
    cut), and the next marker is opened (with the markers right after it that hold no text
    in the demos, such as ``<sep>``), so the model writes the rest about the user's text. "" where the demos have no
    such form (the passage is then shown in the prompt instead: :func:`with_passage`)."""
    if not passage.strip() or not template.prefix or len(template.markers) < 2:
        return ""
    sizes = [n for n in (len(template.field(d, 0).split()) for d in demos) if n]
    if not sizes:
        return ""
    target, cap = statistics.median(sizes), 2 * max(sizes)
    paragraphs = [p.strip() for p in passage.split("\n") if p.strip()]
    sentences = _SENTENCE_END.split(rng.choice(paragraphs))
    after = [sum(len(s.split()) for s in sentences[i:]) for i in range(len(sentences))]
    fits = [i for i, n in enumerate(after) if n >= target / 2] or [0]
    # a start whose sentence fits the cap whole, where there is one (no cut sentence)
    starts = [i for i in fits if len(sentences[i].split()) <= cap] or fits
    words: list[str] = []
    for sentence in sentences[rng.choice(starts):]:
        if len(words) >= target:
            break
        words += sentence.split()
    excerpt = " ".join(words[:cap])
    head, index = template.open_field(f"{template.prefix} {excerpt}", 1), 1
    while index + 1 < len(template.markers) and not any(
            template.field(d, index) for d in demos):
        index += 1
        head = template.open_field(head, index)
    return head


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
