"""THE prompt: the text a task input (or a bare instruction) is shown as, everywhere.

:func:`task_prompt` is THE prompt for a task input: self-labelling (stage 2), the training
records (``prompt`` field) and evaluation all use it, so the finetuned model sees exactly
the prompt it was trained on. :func:`instruction_prompt` is the same shape for a bare
instruction (Self-Instruct rows). Every method's records, training and evaluation share
these two; a method's own generation prompts live in its folder
(``selfguide.methods.<name>.prompts``).

All functions are pure: plain strings in, a plain string out. Chat templates are applied
later by the backend (``backends.rendering.render_prompt``), not here.
"""

from __future__ import annotations

from selfguide.task.spec import TaskSpec

INPUT_MARKER = "Input:"
OUTPUT_MARKER = "Output:"
ANSWER_MARKER = "Answer:"


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
