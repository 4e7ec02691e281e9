"""Evaluation configuration: how ``selfguide eval`` compares base and tuned model.

Decoding is greedy so that before/after comparisons are reproducible. This module does not
import torch or touch files.
"""

from __future__ import annotations

import dataclasses

from selfguide.settings.fields import check, check_choices, field


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Before/after evaluation settings."""

    limit: int = field(0, help="Evaluate at most this many held-out examples, a seeded random "
                               "sample (0 = all).", range=(0, 10_000_000))
    max_new_tokens: int = field(48, help="Maximum tokens generated per answer.")
    batch_size: int = field(16, help="Prompts generated together.", range=(1, 1024))
    precision: str = field("auto", choices=("auto", "bf16", "fp32", "4bit"),
                           help="Base weights precision during evaluation. bf16/fp32 apply a "
                                "QLoRA adapter to the unquantized base (faster on a CPU); 4bit "
                                "evaluates on exactly the quantized base it was trained on; "
                                "auto: bf16 where the GPU/CPU computes it natively, else fp32.")
    first_line: bool = field(True, help="Score only the first non-empty line of an answer "
                                        "(models often keep talking after the answer).")
    bootstrap: int = field(1000, help="Paired bootstrap resamples for the 95% confidence "
                                      "interval of the after-minus-before difference.",
                           range=(0, 1_000_000))
    seed: int = field(0, help="Seed for the example sample and the bootstrap.",
                      range=(0, 2**31 - 1))
    before: bool = field(True, help="Also predict with the base model (adapter disabled).")
    constrained: bool = field(False, help="Classification: answer with the label the model "
                                          "scores most likely instead of free text (rank "
                                          "classification): what the model knows, apart from "
                                          "the answer format.")

    def __post_init__(self) -> None:
        check_choices(self)
        check(self.limit >= 0, "limit", "must be >= 0 (0 = all).")
        check(1 <= self.max_new_tokens <= 4096, "max_new_tokens", "must be in 1..4096.")
        check(self.batch_size >= 1, "batch_size", "must be >= 1.")
        check(self.bootstrap >= 0, "bootstrap", "must be >= 0.")
