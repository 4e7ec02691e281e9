"""Task specs: what the user wants the model to do, and loaders for task files.

A :class:`TaskSpec` holds the instruction, the demonstrations (input/output pairs), the task
type (classification | generation), the label set and the metric. Held-out test rows, when
a file carries them (NIv2 ``Instances``), are kept in ``test`` and never shown to the model
during synthesis or training.

This module validates and converts; it does not prompt models or write run directories.
Loaders are filled in by the SELF-GUIDE stage (own JSON/YAML, NIv2 task files, CSV/JSONL).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from selfguide.errors import TaskError

TASK_TYPES = ("classification", "generation")
METRICS = ("exact_match", "rouge_l")


@dataclass(frozen=True)
class Demo:
    input: str
    output: str


@dataclass(frozen=True)
class TestExample:
    input: str
    outputs: tuple[str, ...]  # accepted answers; the first is the reference
    id: str = ""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    instruction: str
    demos: tuple[Demo, ...]
    task_type: str = "generation"
    labels: tuple[str, ...] = ()
    metric: str = "rouge_l"
    test: tuple[TestExample, ...] = field(default=(), compare=False)
    source: str = ""

    @property
    def is_classification(self) -> bool:
        return self.task_type == "classification"

    def to_dict(self, *, include_test: bool = True) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["demos"] = [dataclasses.asdict(x) for x in self.demos]
        d["test"] = [dataclasses.asdict(x) for x in self.test] if include_test else []
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSpec:
        """Build and validate from our own schema (see README "Task files")."""
        from selfguide.task_io import task_from_dict  # loaders live beside validation

        return task_from_dict(d)
