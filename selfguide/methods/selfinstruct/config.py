"""Self-Instruct configuration: the bootstrap loop's settings and its filter thresholds.

Two frozen dataclasses validated in ``__post_init__``: :class:`SelfInstructConfig` (how
instructions and instances are generated; defaults from Wang et al. 2022 and their
released code, https://github.com/yizhongw/self-instruct) and
:class:`SelfInstructFilterConfig` (the thresholds of every filter in
:mod:`selfguide.methods.selfinstruct.filters`). Their help texts feed the CLI and the studio.
This module does not touch files or models.
"""

from __future__ import annotations

import dataclasses

from selfguide.settings.fields import check, check_choices, field

# The paper's keyword blacklist ("unsuitable for language models") plus the words added in
# the released code's later version; editable per run.
DEFAULT_BLACKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file",
                     "files", "map", "maps", "draw", "plot", "go to", "video", "audio",
                     "music", "flowchart", "diagram")
CLASSIFY_MODES = ("generate", "score")
CONFLICT_SCOPES = ("task", "input")


@dataclasses.dataclass(frozen=True)
class SelfInstructConfig:
    """How the Self-Instruct bootstrap loop generates instructions and instances."""

    num_instructions: int = field(100, help="Stop once this many new instructions have been "
                                            "accepted into the pool.")
    max_rounds: int = field(200, help="Give up after this many rounds even if fewer "
                                      "instructions were accepted.")
    prompts_per_round: int = field(8, help="Instruction-generation prompts per round (one "
                                           "batch); the round is the unit saved for resume.")
    prompt_instructions: int = field(8, help="Instructions shown (numbered) in each "
                                             "generation prompt (paper: 8).")
    machine_in_prompt: int = field(2, help="How many of those come from the machine-generated "
                                           "pool once it has some (paper: 2; rest are seeds).")
    new_per_prompt: int = field(8, help="Stop each generation after this many new numbered "
                                        "instructions.")
    instruction_temperature: float = field(0.7, help="Sampling temperature for new "
                                                     "instructions (paper: 0.7).")
    instruction_top_p: float = field(0.5, help="Nucleus sampling for new instructions "
                                               "(paper: 0.5).")
    instruction_max_tokens: int = field(256, help="Token budget per instruction-generation "
                                                  "prompt; a list cut by it loses its last "
                                                  "item.")
    instance_temperature: float = field(0.0, help="Temperature for instance generation "
                                                  "(paper: 0 = greedy).")
    instance_max_tokens: int = field(300, help="Token budget per instance-generation prompt "
                                               "(paper: 300).")
    classify_with: str = field("generate", choices=CLASSIFY_MODES,
                               help="Classification identification: 'generate' asks the "
                                    "few-shot question and reads Yes/No (paper); 'score' "
                                    "compares the log-probabilities of Yes and No.")
    clf_shots: int = field(8, help="Seed tasks (balanced yes/no) shown in the classification "
                                   "identification prompt.")
    instance_shots: int = field(3, help="Seed tasks with their instances shown in each "
                                        "instance-generation prompt.")
    use_chat_template: bool = field(False, help="Wrap the Self-Instruct prompts in the "
                                                "model's chat template. Off: plain list "
                                                "continuations, as with the paper's base LM.")
    seed: int = field(0, help="Random seed for prompt sampling and generation.")

    def __post_init__(self) -> None:
        check_choices(self)
        check(self.num_instructions >= 1, "num_instructions", "must be >= 1.")
        check(self.max_rounds >= 1, "max_rounds", "must be >= 1.")
        check(self.prompts_per_round >= 1, "prompts_per_round", "must be >= 1.")
        check(1 <= self.prompt_instructions <= 64, "prompt_instructions",
              "must be between 1 and 64.")
        check(0 <= self.machine_in_prompt <= self.prompt_instructions, "machine_in_prompt",
              "must be between 0 and prompt_instructions.")
        check(1 <= self.new_per_prompt <= 64, "new_per_prompt", "must be between 1 and 64.")
        check(0.0 <= self.instruction_temperature <= 5.0, "instruction_temperature",
              "must be between 0 and 5.")
        check(0.0 < self.instruction_top_p <= 1.0, "instruction_top_p", "must be in (0, 1].")
        check(0.0 <= self.instance_temperature <= 5.0, "instance_temperature",
              "must be between 0 and 5.")
        for name in ("instruction_max_tokens", "instance_max_tokens"):
            v = getattr(self, name)
            check(isinstance(v, int) and 8 <= v <= 8192, name, "must be between 8 and 8192.")
        check(self.clf_shots >= 0, "clf_shots", "must be >= 0.")
        check(self.instance_shots >= 0, "instance_shots", "must be >= 0.")


# Named settings (``selfguide self-instruct --preset``, the Synthesize page's picker): field
# overrides of SelfInstructConfig. ``quick``: a first run sized for a CPU and the embedded
# model (measured on a shared 2-core CPU: 2 rounds, 8 prompts, 12 instructions, 7 training
# examples in 6.5 min); ``paper``: Wang et al. 2022 (the defaults; hours on a CPU).
PRESETS: dict[str, dict] = {
    "quick": {"num_instructions": 12, "max_rounds": 6, "prompts_per_round": 4,
              "new_per_prompt": 4, "instruction_max_tokens": 160, "instance_max_tokens": 160,
              "clf_shots": 4, "instance_shots": 2},
    "paper": {},
}


def preset(name: str | None, **overrides) -> SelfInstructConfig:
    """``SelfInstructConfig`` of preset ``name`` (None: the defaults) with ``overrides``."""
    from selfguide.errors import ConfigError
    from selfguide.settings.fields import from_dict

    if name is not None and name not in PRESETS:
        raise ConfigError(f"Unknown Self-Instruct preset {name!r}.",
                          hint=f"Choose one of {', '.join(PRESETS)}.")
    return from_dict(SelfInstructConfig, {**PRESETS.get(name or "", {}), **overrides})


# Filter settings frozen after generation: they decided which instructions joined the pool
# (and so what was generated next), so changing them needs a new run. The one list: the
# pipeline's refilter, the method registry and the Filter page read it from here.
POOL_FILTER_FIELDS = ("rouge_threshold", "min_instruction_words", "max_instruction_words",
                      "blacklist", "banned_prefixes")


@dataclasses.dataclass(frozen=True)
class SelfInstructFilterConfig:
    """Thresholds of the Self-Instruct instruction and instance filters."""

    rouge_threshold: float = field(0.7, help="Reject a new instruction whose ROUGE-L with any "
                                             "instruction already in the pool is >= this "
                                             "(paper: 0.7).")
    min_instruction_words: int = field(3, help="Reject instructions with fewer words.")
    max_instruction_words: int = field(150, help="Reject instructions with more words.")
    blacklist: tuple[str, ...] = field(DEFAULT_BLACKLIST,
                                       help="Reject instructions containing any of these "
                                            "words or phrases (whole words, any case): tasks "
                                            "a text model cannot do.")
    banned_prefixes: tuple[str, ...] = field(("Write a program",),
                                             help="Reject instructions starting with these "
                                                  "(the released code's 'Write a program' "
                                                  "rule).")
    max_input_words: int = field(256, help="Drop instances whose input has more words.")
    max_output_words: int = field(256, help="Drop instances whose output has more words.")
    conflict_scope: str = field("task", choices=CONFLICT_SCOPES,
                                help="Same input with different outputs: drop every instance "
                                     "of that instruction ('task', as the released code) or "
                                     "only the conflicting ones ('input').")

    def __post_init__(self) -> None:
        check_choices(self)
        check(0.0 < self.rouge_threshold <= 1.0, "rouge_threshold", "must be in (0, 1].")
        check(self.min_instruction_words >= 0, "min_instruction_words", "must be >= 0.")
        check(self.max_instruction_words >= max(1, self.min_instruction_words),
              "max_instruction_words", "must be >= min_instruction_words and >= 1.")
        check(self.max_input_words >= 1, "max_input_words", "must be >= 1.")
        check(self.max_output_words >= 1, "max_output_words", "must be >= 1.")
        words = tuple(w.strip() for w in self.blacklist if w and w.strip())
        object.__setattr__(self, "blacklist", words)
        object.__setattr__(self, "banned_prefixes",
                           tuple(p for p in self.banned_prefixes if p and p.strip()))
