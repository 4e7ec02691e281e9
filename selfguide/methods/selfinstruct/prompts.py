"""Self-Instruct seed tasks, prompts and parsers (pure functions).

What it does:
- loads and validates seed task pools in the schema of the paper's released
  ``seed_tasks.jsonl`` (``id``, ``name``, ``instruction``, ``instances: [{input, output}]``,
  ``is_classification``), so a user's copy of the paper's 175-task file loads unchanged;
- builds the four prompts of the bootstrap loop (instruction generation with 8 numbered
  instructions, classification identification, input-first and output-first instance
  generation), in the structure of Wang et al. 2022 (arXiv:2212.10560, Tables 5-8) with
  our own wording and few-shot examples taken from the seed pool;
- parses model output back into instructions, yes/no answers and (input, output) pairs,
  tolerating ragged numbering, chat preambles and lists cut off by the token budget.

What it does not do: call models, filter, or write files (see
:mod:`selfguide.methods.selfinstruct.pipeline`). Randomness comes in as an explicit
``random.Random``.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from selfguide.errors import TaskError

MAX_SEED_FILE_BYTES = 20_000_000


# --------------------------------------------------------------------------- seed tasks

@dataclass(frozen=True)
class SeedTask:
    id: str
    name: str
    instruction: str
    instances: tuple[tuple[str, str], ...]  # (input, output)
    is_classification: bool

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "instruction": self.instruction,
                "instances": [{"input": i, "output": o} for i, o in self.instances],
                "is_classification": self.is_classification}


def default_seed_path() -> Path:
    """The seed pool shipped with selfguide (written for this project, not the paper's)."""
    import selfguide

    return Path(selfguide.__file__).resolve().parent / "data" / "seed_tasks.jsonl"


def _seed_from_record(rec: object, where: str, index: int) -> SeedTask:
    hint = ('Each line must look like {"id": "seed_task_0", "name": "...", "instruction": '
            '"...", "instances": [{"input": "", "output": "..."}], "is_classification": false}.')
    if not isinstance(rec, dict):
        raise TaskError(f"{where}: expected a JSON object, got {type(rec).__name__}.", hint=hint)
    instr = rec.get("instruction")
    if not isinstance(instr, str) or not instr.strip():
        raise TaskError(f"{where}: 'instruction' is missing or empty.", hint=hint)
    insts = rec.get("instances")
    if not isinstance(insts, list) or not insts:
        raise TaskError(f"{where}: 'instances' must be a non-empty list of "
                        "{\"input\", \"output\"} objects.", hint=hint)
    pairs = []
    for k, inst in enumerate(insts):
        if not isinstance(inst, dict):
            raise TaskError(f"{where}: instances[{k}] is not an object.", hint=hint)
        inp, out = inst.get("input", ""), inst.get("output")
        if inp is None:
            inp = ""
        if not isinstance(inp, str) or not isinstance(out, str):
            raise TaskError(f"{where}: instances[{k}] needs string 'input' and 'output'.",
                            hint=hint)
        if not out.strip():
            raise TaskError(f"{where}: instances[{k}] has an empty 'output'.", hint=hint)
        pairs.append((inp, out))
    is_clf = rec.get("is_classification", False)
    if not isinstance(is_clf, bool):
        raise TaskError(f"{where}: 'is_classification' must be true or false, got {is_clf!r}.",
                        hint=hint)
    sid = rec.get("id", f"seed_task_{index}")
    name = rec.get("name", sid)
    if not isinstance(sid, str | int) or not isinstance(name, str):
        raise TaskError(f"{where}: 'id' and 'name' must be strings.", hint=hint)
    return SeedTask(str(sid), name, instr.strip(), tuple(pairs), is_clf)


def parse_seed_tasks(data: bytes | str, source: str = "<seed tasks>") -> list[SeedTask]:
    """Parse a seed-task JSONL document; ``TaskError`` names the file and line."""
    if isinstance(data, bytes):
        if len(data) > MAX_SEED_FILE_BYTES:
            raise TaskError(f"{source} is larger than {MAX_SEED_FILE_BYTES // 1_000_000} MB.")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TaskError(f"{source} is not UTF-8 (bad byte at offset {exc.start}).",
                            hint="Save the file as UTF-8.") from exc
    tasks: list[SeedTask] = []
    ids: dict[str, int] = {}
    for lineno, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}, line {lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}).",
                            hint="Seed files are JSONL: one JSON object per line.") from exc
        task = _seed_from_record(rec, where, len(tasks))
        if task.id in ids:
            raise TaskError(f"{where}: duplicate id {task.id!r} (first on line {ids[task.id]}).")
        ids[task.id] = lineno
        tasks.append(task)
    if not tasks:
        raise TaskError(f"{source} contains no seed tasks.",
                        hint="Give at least one task per line (the paper used 175).")
    return tasks


def load_seed_tasks(path: str | Path | None = None) -> list[SeedTask]:
    """Load a seed pool (default: the shipped one)."""
    p = Path(path) if path is not None else default_seed_path()
    if p.exists() and not p.is_file():
        raise TaskError(f"Seed task path {p} is "
                        f"{'a directory' if p.is_dir() else 'not a regular file'}, not a JSONL "
                        "file.", hint="Pass a JSONL file with --seed-tasks.")
    if p.is_file() and p.stat().st_size > 50 * 2**20:
        raise TaskError(f"Seed task file {p} is larger than 50 MB.")
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise TaskError(f"Seed task file {p} not found.",
                        hint="Pass an existing JSONL file with --seed-tasks.") from exc
    except IsADirectoryError as exc:
        raise TaskError(f"Seed task path {p} is a directory, not a JSONL file.") from exc
    except OSError as exc:
        raise TaskError(f"Seed task file {p} cannot be read: {exc.strerror or exc}.") from exc
    return parse_seed_tasks(data, str(p))


# --------------------------------------------------------------------------- instruction generation

def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def sample_prompt_instructions(seed_instructions: Sequence[str],
                               machine_instructions: Sequence[str], *, total: int,
                               machine: int, rng: random.Random) -> list[str]:
    """Pick the instructions shown in one generation prompt.

    Up to ``machine`` from the machine-generated pool, the rest from the seeds, shuffled
    (released code: ``sample_machine_instructions`` + ``random.sample(seed, ...)``).
    """
    picked = rng.sample(list(machine_instructions), min(machine, len(machine_instructions)))
    n_seed = min(total - len(picked), len(seed_instructions))
    picked += rng.sample(list(seed_instructions), n_seed)
    rng.shuffle(picked)
    return picked


def instruction_prompt(instructions: Sequence[str]) -> str:
    """The numbered "Come up with a series of tasks" prompt ending with the next number."""
    lines = ["Come up with a series of tasks:"]
    for i, instr in enumerate(instructions, start=1):
        lines.append(f"{i}. {_one_line(instr).rstrip(':')}")
    return "\n".join(lines) + f"\n{len(instructions) + 1}."


_NUMBERED = re.compile(r"(?m)^[ \t]*(?:\*\*)?(\d{1,3})[ \t]*[.)](?:\*\*)?[ \t]*")
_TASK_PREFIX = re.compile(r"^(?:task|instruction)[ \t]*\d*[ \t]*:[ \t]*", re.IGNORECASE)


def _clean_instruction(seg: str) -> str:
    seg = seg.split("\n\n")[0]  # a blank line ends an item (trailing chatter)
    seg = _TASK_PREFIX.sub("", _one_line(seg))
    seg = seg.strip().strip('"').strip()
    return seg[:1].upper() + seg[1:] if seg else ""


def parse_instructions(raw: str, *, start: int | None = None,
                       truncated: bool = False) -> list[str]:
    """New instructions from a numbered continuation of :func:`instruction_prompt`.

    The text before the first number continues the prompt's open item ``start`` (``9``),
    unless it is a chat preamble ending with ``:``. A numbered line starts a new item only
    if its number is above the previous item's (skips are tolerated), so a nested list
    (``1. ... 2. ...`` inside item 10) stays part of its item; without a head the first
    number sets the sequence.
    Items may span lines (whitespace is collapsed) and a blank line ends an item.
    ``truncated`` (the token budget ran out) drops the last item, which may be cut
    mid-sentence (the released code dropped the whole response). Empty items are skipped;
    filters judge the rest.
    """
    if not raw or not raw.strip():
        return []
    marks = list(_NUMBERED.finditer(raw))
    head = raw[: marks[0].start()] if marks else raw
    has_head = bool(head.strip()) and not _one_line(head.split("\n\n")[0]).endswith(":")
    bounds: list[tuple[int, int]] = [(0, len(head))] if has_head else []
    expected = start + 1 if has_head and start is not None else None
    for m in marks:
        number = int(m.group(1))
        if expected is None or number >= expected:
            if bounds:
                bounds[-1] = (bounds[-1][0], m.start())
            bounds.append((m.end(), len(raw)))
            expected = number + 1
    items = [_clean_instruction(raw[a:b]) for a, b in bounds]
    if truncated and items:
        items = items[:-1]
    return [s for s in items if s]


# --------------------------------------------------------------------------- classification

CLF_HEADER = ("Can the following task be regarded as a classification task with finite "
              "output labels?")


def select_clf_shots(seeds: Sequence[SeedTask], k: int) -> list[tuple[str, bool]]:
    """Up to ``k`` seed instructions alternating Yes/No, in file order (deterministic)."""
    yes = [s.instruction for s in seeds if s.is_classification]
    no = [s.instruction for s in seeds if not s.is_classification]
    shots: list[tuple[str, bool]] = []
    for i in range(max(len(yes), len(no))):
        for pool, label in ((yes, True), (no, False)):
            if i < len(pool) and len(shots) < k:
                shots.append((pool[i], label))
    return shots


def classification_prompt(instruction: str, shots: Sequence[tuple[str, bool]]) -> str:
    """Few-shot "is it classification?" prompt; the answer follows the final ``?``."""
    parts = [CLF_HEADER, ""]
    for instr, is_clf in shots:
        parts += [f"Task: {_one_line(instr)}", f"Is it classification? {'Yes' if is_clf else 'No'}",
                  ""]
    parts += [f"Task: {_one_line(instruction)}", "Is it classification?"]
    return "\n".join(parts)


def parse_yes_no(raw: str) -> bool | None:
    """``True``/``False`` from the first word of an answer (yes/no, any case), else None."""
    m = re.match(r"\W*(yes|no)\b", raw or "", re.IGNORECASE)
    return None if m is None else m.group(1).lower() == "yes"


# --------------------------------------------------------------------------- instances

INPUT_FIRST_HEADER = (
    "Come up with examples for the following tasks. Try to generate multiple examples when "
    "possible. If the task doesn't require additional input, you can generate the output "
    "directly.")
OUTPUT_FIRST_HEADER = (
    "Given the classification task definition and the class labels, generate an input that "
    "corresponds to each of the class labels. If the task doesn't require input, just "
    "generate possible class labels.")


def select_instance_shots(seeds: Sequence[SeedTask], k: int, *,
                          classification: bool) -> list[SeedTask]:
    """The first ``k`` seeds of the requested kind (classification or not), in file order."""
    return [s for s in seeds if s.is_classification == classification][:k]


def input_first_prompt(instruction: str, shots: Sequence[SeedTask]) -> str:
    """Input-first instance prompt (non-classification): examples as Input/Output pairs.

    Ends with ``Example 1`` so the model starts the first instance right away.
    """
    parts = [INPUT_FIRST_HEADER, ""]
    for s in shots:
        parts.append(f"Task: {_one_line(s.instruction)}")
        for i, (inp, out) in enumerate(s.instances, start=1):
            parts.append(f"Example {i}")
            if inp.strip():
                parts.append(f"Input: {inp.strip()}")
            parts.append(f"Output: {out.strip()}")
        parts.append("")
    parts += [f"Task: {_one_line(instruction)}", "Example 1"]
    return "\n".join(parts) + "\n"


def output_first_prompt(instruction: str, shots: Sequence[SeedTask]) -> str:
    """Output-first instance prompt (classification): a class label, then an input for it.

    Ends with ``Class label:`` so the model names a label first (avoids inputs biased to
    one label, Self-Instruct §2.2).
    """
    parts = [OUTPUT_FIRST_HEADER, ""]
    for s in shots:
        parts.append(f"Task: {_one_line(s.instruction)}")
        for inp, out in s.instances:
            parts.append(f"Class label: {out.strip()}")
            if inp.strip():
                parts.append(f"Input: {inp.strip()}")
        parts.append("")
    parts += [f"Task: {_one_line(instruction)}", "Class label:"]
    return "\n".join(parts)


_NEXT_TASK = re.compile(r"(?m)^[ \t]*Task[ \t]*:")
_EXAMPLE = re.compile(r"(?m)^[ \t]*Example[ \t]*\d*[ \t]*[.:]?[ \t]*(?=$|Input|Output)")
_OUTPUT = re.compile(r"Output\s*\d*\s*:")
_INPUT = re.compile(r"Input\s*\d*\s*:")


def _until_next_task(text: str) -> str:
    m = _NEXT_TASK.search(text)
    return text[: m.start()] if m else text


def parse_input_output(text: str) -> tuple[str, str]:
    """(input, output) of one example: before/after ``Output:`` (released code's
    ``parse_input_output``); no ``Output:`` means the whole text is the output."""
    parts = _OUTPUT.split(text, maxsplit=2)
    if len(parts) > 1:
        inp, out = parts[0], parts[1]
    else:
        inp, out = "", text
    out = _INPUT.split(out)[0]  # a second Input: starts another example
    inp = re.sub(r"^\s*Input\s*\d*\s*:", "", inp)
    return inp.strip(), out.strip()


def parse_input_first(raw: str, *, truncated: bool = False) -> list[tuple[str, str]]:
    """Instances from the continuation of :func:`input_first_prompt` (after ``Example 1``)."""
    text = _until_next_task("Example 1\n" + (raw or ""))
    chunks = [c for c in _EXAMPLE.split(text) if c.strip()]
    out = [parse_input_output(c) for c in chunks]
    if truncated and out:
        out = out[:-1]
    return out


def parse_output_first(raw: str, *, truncated: bool = False) -> list[tuple[str, str]]:
    """(input, label) pairs from the continuation of :func:`output_first_prompt`.

    Each ``Class label:`` block: the first line is the label, the rest (minus an
    ``Input:`` prefix) is the input (released code's
    ``parse_instances_for_classification_task``).
    """
    text = _until_next_task("Class label:" + (raw or ""))
    out = []
    for block in text.split("Class label:")[1:]:
        block = block.strip()
        if not block:
            continue
        label, _, rest = block.partition("\n")
        inp = re.sub(r"^\s*Input\s*\d*\s*:", "", rest).strip()
        out.append((inp, label.strip()))
    if truncated and out:
        out = out[:-1]
    return out
