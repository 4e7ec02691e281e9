"""SELF-GUIDE synthesis and filter settings, and the ``quick``/``paper`` presets.

:class:`SynthesisConfig` controls what is generated (rounds, prompts, sampling, samples per
input); changing it means generating again. :class:`FilterConfig` controls what is kept
(thresholds, label strategy, balancing); it can be re-applied to an existing run without
generating (``selfguide filter``). Both are frozen and validated on construction.

This module holds settings only; the stages live in ``selfguide.methods.selfguide.pipeline``.
"""

from __future__ import annotations

import dataclasses

from selfguide.errors import ConfigError
from selfguide.methods.selfguide import strategies
from selfguide.settings.fields import check, check_choices, field, from_dict, to_dict

LABEL_STRATEGIES = strategies.NAMES
LABEL_PROTOCOLS = ("auto", "chat", "plain")
INPUT_PROMPTS = ("by_label", "mixed")

DEFAULT_NOISE_TERMS = (
    "[input]", "[output]", "input:", "output:", "new input", "example input",
    "sure, here", "sure! here", "here is a new", "here's a new", "here is an example",
    "here's an example", "as an ai", "i'm sorry", "<|", "```",
)


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
    """How SELF-GUIDE generates inputs (stage 1) and annotates them (stage 2)."""

    seed: int = field(0, help="Random seed for prompt sampling, target labels and decoding.")
    rounds: int = field(40, help="Stage 1 rounds of input generation (paper: 40).")
    prompts_per_round: int = field(10, help="Input-generation prompts per round (paper: 10); "
                                            "a round is the unit of resumption.")
    min_inputs: int = field(0, help="Keep adding rounds past 'rounds' while fewer than this "
                                    "many generated inputs pass the input filters (noise, "
                                    "length, duplicates, near-duplicates), up to max_rounds; "
                                    "for models that keep writing the same inputs (0 = off).")
    max_rounds: int = field(0, help="Most rounds when min_inputs asks for more (0 = 2 x "
                                    "rounds).")
    min_per_label: int = field(0, help="Classification: after labelling, while a label has "
                                       "fewer than this many examples past the filters "
                                       "(before balancing, which cuts every label to the "
                                       "rarest), add top-up rounds whose prompts ask only "
                                       "for such labels, up to topup_rounds (0 = off; none "
                                       "under label strategy own, which is not balanced).")
    topup_rounds: int = field(0, help="Most top-up rounds min_per_label may add.")
    min_generated_examples: int = field(1, help="Fewest earlier generated inputs shown in a "
                                                "prompt as lower-quality examples.")
    max_generated_examples: int = field(10, help="Most earlier generated inputs shown in a "
                                                 "prompt as lower-quality examples (paper: 10).")
    input_temperature: float = field(1.0, help="Sampling temperature for new inputs (high = "
                                               "diverse).")
    input_top_p: float = field(0.95, help="Nucleus sampling for new inputs.")
    input_max_new_tokens: int = field(0, help="Token budget per new input; 0 = derived from "
                                              "the longest demo input.")
    n_samples: int = field(10, help="Answers sampled per input for the self-consistency vote "
                                    "(paper: 10).")
    output_temperature: float = field(0.3, help="Sampling temperature for answers (low = "
                                                "consistent).")
    output_max_new_tokens: int = field(0, help="Token budget per answer; 0 = derived from the "
                                               "longest demo output.")
    annotate_batch: int = field(16, help="Inputs annotated per batch; a batch is the unit of "
                                         "resumption in stage 2.")
    input_chat: bool = field(False, help="Wrap input-generation prompts in the model's chat "
                                         "template. Off = a plain few-shot list to continue, "
                                         "which small models follow far better.")
    input_template: bool = field(True, help="When every demo input starts with the same field "
                                            "marker (\"Premise:\"), write it at the start of "
                                            "each new input so the model fills the demos' "
                                            "form; the structure filter checks the rest.")
    input_prompt: str = field("by_label", choices=INPUT_PROMPTS,
                              help="Classification: how a stage-1 prompt asks for an input of "
                                   "its target label. by_label = a list of inputs whose "
                                   "answer is that label (earlier inputs written for it, "
                                   "then the demos of that label) to continue; mixed = every "
                                   "demo, each after its answer, ending with the target "
                                   "answer (the original form). The embedded model "
                                   "writes inputs its own labeller agrees with about twice "
                                   "as often by label (bench/README.md \"Synthesis\").")
    label_protocol: str = field("auto", choices=LABEL_PROTOCOLS,
                                help="How the model labels its inputs: chat (the task prompt "
                                     "in the model's chat template, as evaluation and the "
                                     "tuned model answer), plain (the same text continued "
                                     "after 'Output:'), or auto (whichever labels more "
                                     "held-out demos right, leave-one-out; chat on ties "
                                     "and when none beats chance).")
    probe_inputs: int = field(24, help="Generated inputs labelled in every protocol to judge "
                                       "how degenerate each way of labelling is (auto choices; "
                                       "they are reused as annotations).")
    score_labels: bool = field(True, help="Classification: also score every label's "
                                          "log-probability per input (needed by the "
                                          "rank, calibrated and own strategies and the "
                                          "diagnostics).")

    def __post_init__(self) -> None:
        check(self.rounds >= 1, "rounds", "must be >= 1.")
        check(1 <= self.prompts_per_round <= 1000, "prompts_per_round", "must be in 1..1000.")
        check(self.min_inputs >= 0, "min_inputs", "must be >= 0 (0 = off).")
        check(self.max_rounds == 0 or self.max_rounds >= self.rounds, "max_rounds",
              "must be 0 (= 2 x rounds) or >= rounds.")
        check(0 <= self.min_generated_examples <= self.max_generated_examples <= 50,
              "min_generated_examples", "need 0 <= min <= max_generated_examples <= 50.")
        check(0.0 <= self.input_temperature <= 5.0, "input_temperature", "must be in 0..5.")
        check(0.0 < self.input_top_p <= 1.0, "input_top_p", "must be in (0, 1].")
        check(0 <= self.input_max_new_tokens <= 4096, "input_max_new_tokens",
              "must be in 0..4096 (0 = auto).")
        check(1 <= self.n_samples <= 64, "n_samples", "must be in 1..64.")
        check(0.0 <= self.output_temperature <= 5.0, "output_temperature", "must be in 0..5.")
        check(0 <= self.output_max_new_tokens <= 4096, "output_max_new_tokens",
              "must be in 0..4096 (0 = auto).")
        check(1 <= self.annotate_batch <= 4096, "annotate_batch", "must be in 1..4096.")
        check(0 <= self.min_per_label <= 100000, "min_per_label", "must be >= 0 (0 = off).")
        check(0 <= self.topup_rounds <= 100, "topup_rounds", "must be in 0..100.")
        check(0 <= self.probe_inputs <= 1000, "probe_inputs", "must be in 0..1000.")
        check_choices(self)

    @property
    def total_prompts(self) -> int:
        """Input-generation prompts of the planned rounds (min_inputs may add rounds)."""
        return self.rounds * self.prompts_per_round

    @property
    def round_limit(self) -> int:
        """The most rounds stage 1 may run."""
        if not self.min_inputs:
            return self.rounds
        return self.max_rounds or 2 * self.rounds


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Which candidates are kept. Re-applied without generating by ``selfguide filter``."""

    noise_terms: tuple[str, ...] = field(DEFAULT_NOISE_TERMS, help="Case-insensitive terms "
                                         "that mark a text as noise (prompt markers, chatty "
                                         "openers); comma-separated on the command line.")
    min_structure: float = field(1.0, help="Inputs must carry at least this share of the "
                                           "structure every demo input shares (its field "
                                           "markers in order, separators, a marked span, its "
                                           "line count; shown on the Task page): 1 = all of "
                                           "it, 0 = off. No effect when the demos share none.")
    length_k: float = field(3.0, help="Length window = mean +/- k standard deviations of the "
                                      "demos' word counts (k).")
    min_words: int = field(0, help="Absolute lower bound on input words (0 = from the demos).")
    max_words: int = field(0, help="Absolute upper bound on input words (0 = from the demos).")
    near_duplicate_threshold: float = field(0.7, help="Drop an input whose ROUGE-L F to a demo "
                                                      "or an earlier input is >= this (and, "
                                                      "as held_out, one this close to a "
                                                      "held-out evaluation row of the task).")
    filter_given: bool = field(False, help="Apply the filters meant for text the model "
                                           "wrote (noise, structure, length, "
                                           "near-duplicate) to your own inputs (--inputs) "
                                           "too; off = only empty, held-out and exact "
                                           "duplicates, then the answer filters.")
    min_frequency: float = field(0.2, help="Self-consistency: keep an answer only if its share "
                                           "of the n samples is >= this (paper: 0.2).")
    label_strategy: str = field("auto", choices=LABEL_STRATEGIES,
                                help="Classification labels: auto (the self-label strategy "
                                     "that labels most demos right leave-one-out without "
                                     "collapsing onto one label and whose labels follow the "
                                     "label each input was written for more often than "
                                     "chance; own when none does), vote (paper: majority of "
                                     "samples), rank (the likeliest label), calibrated (label "
                                     "log-prob minus its mean over the candidates), own (the "
                                     "likeliest label in the form the model answers in, "
                                     "never balanced: training keeps the model's own "
                                     "choices), target (the label the input was asked for), "
                                     "agree (only rows where vote/calibrated == target).")
    agree_source: str = field("vote", choices=("vote", "calibrated"),
                              help="Which self-label 'agree' compares with the target label.")
    calibration_margin: float = field(0.0, help="'calibrated': keep a row only if its best "
                                                "calibrated score beats the second by >= this.")
    drop_copies: bool = field(True, help="Generation tasks: drop answers identical to their "
                                         "input, unless the demos' relation admits a copy (a "
                                         "demo output shares >= 1 - relation_margin/2 "
                                         "ROUGE-L with its input: 0.5 by default).")
    min_agreement: float = field(0.3, help="Generation tasks: keep an answer only if it agrees "
                                           "with the other samples by at least this mean "
                                           "ROUGE-L (the consensus answer's agreement; 0 = "
                                           "off).")
    relation_margin: float = field(1.0, help="Generation tasks: keep a pair only if its "
                                             "output/input length ratio and ROUGE-L lie within "
                                             "the demos' range widened by this margin (ratio "
                                             "x or / (1 + margin), overlap +/- margin/2); "
                                             "larger = looser, 5 = off. Three demos span about "
                                             "half of what real pairs do, hence 1: twice "
                                             "their range.")
    drop_repetitive: bool = field(True, help="Drop answers that loop (one 3-word phrase "
                                             "repeated 3+ times over a third of the answer).")
    balance: bool = field(True, help="Classification: downsample every label to the rarest "
                                     "label's count (seeded); not with label strategy own.")
    max_examples: int = field(0, help="Cap on training examples after filtering (0 = none).")
    val_fraction: float = field(0.0, help="Fraction of the kept rows held back in "
                                          "dataset/val.jsonl.")
    seed: int = field(0, help="Seed for balancing, the cap and the validation split.")
    dominant_label_share: float = field(0.8, help="Diagnostics: warn when one label has more "
                                                  "than this share of the self-labels.")
    low_vote_share: float = field(0.5, help="Diagnostics: warn when the mean vote share is "
                                            "below this.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_terms",
                           tuple(t for t in (str(x).strip() for x in self.noise_terms) if t))
        check(0.0 <= self.min_structure <= 1.0, "min_structure", "must be in [0, 1].")
        check(0.0 <= self.length_k <= 100, "length_k", "must be in 0..100.")
        check(self.min_words >= 0 and self.max_words >= 0, "min_words", "must be >= 0.")
        check(self.max_words == 0 or self.max_words >= self.min_words, "max_words",
              "must be >= min_words (or 0).")
        check(0.0 < self.near_duplicate_threshold <= 1.0, "near_duplicate_threshold",
              "must be in (0, 1] (1 = only exact token matches).")
        check(0.0 <= self.min_frequency <= 1.0, "min_frequency", "must be in [0, 1].")
        check(0.0 <= self.min_agreement <= 1.0, "min_agreement", "must be in [0, 1].")
        check(0.0 <= self.relation_margin <= 5.0, "relation_margin", "must be in [0, 5].")
        check(self.calibration_margin >= 0.0, "calibration_margin", "must be >= 0.")
        check(self.max_examples >= 0, "max_examples", "must be >= 0.")
        check(0.0 <= self.val_fraction < 0.9, "val_fraction", "must be in [0, 0.9).")
        check(0.0 < self.dominant_label_share <= 1.0, "dominant_label_share",
              "must be in (0, 1].")
        check(0.0 <= self.low_vote_share <= 1.0, "low_vote_share", "must be in [0, 1].")
        check_choices(self)


# Presets: overrides of the defaults above. "paper" = Zhao et al. 2024 (40 rounds x 10
# prompts, 10 samples, min_frequency 0.2, majority-vote labels). "quick" = sized for a
# 2-core CPU with the embedded 135M model (see bench/README.md "Synthesis"); protocol and
# label strategy are chosen per run from the demos (label_protocol/label_strategy "auto").
PRESETS: dict[str, dict[str, dict]] = {
    "paper": {"synthesis": {}, "filters": {"label_strategy": "vote"}},
    "quick": {
        "synthesis": {"rounds": 6, "prompts_per_round": 18, "n_samples": 5,
                      "max_generated_examples": 3, "annotate_batch": 18,
                      "min_inputs": 60, "max_rounds": 12, "min_per_label": 10,
                      "topup_rounds": 4},
        "filters": {},
    },
}


def preset(name: str, *, synthesis: dict | None = None, filters: dict | None = None
           ) -> tuple[SynthesisConfig, FilterConfig]:
    """The configs of preset ``name`` with the given overrides on top."""
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset {name!r}.", hint=f"Choose one of {', '.join(PRESETS)}.")
    p = PRESETS[name]
    return (from_dict(SynthesisConfig, {**p["synthesis"], **(synthesis or {})}),
            from_dict(FilterConfig, {**p["filters"], **(filters or {})}))


__all__ = [
    "DEFAULT_NOISE_TERMS",
    "INPUT_PROMPTS",
    "LABEL_PROTOCOLS",
    "LABEL_STRATEGIES",
    "PRESETS",
    "FilterConfig",
    "SynthesisConfig",
    "preset",
    "to_dict",
]
