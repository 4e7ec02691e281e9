"""Training configuration: how ``selfguide train`` finetunes the model on its own data.

One frozen dataclass, :class:`TrainConfig`, validated in ``__post_init__``; its help texts
feed the CLI, the studio and the README. ``PRESETS`` holds the named settings used by
``selfguide run --preset``. This module does not import torch or touch files.
"""

from __future__ import annotations

import dataclasses

from selfguide.settings.fields import check, check_choices, field

METHODS = ("auto", "qlora", "lora", "full")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
SAVE_STRATEGIES = ("epoch", "steps")
LONG_ROWS = ("drop", "error", "truncate")
ATTENTION = ("auto", "eager", "sdpa")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Finetuning settings (QLoRA by default; LoRA on an fp32 base on a CPU without bf16)."""

    method: str = field("auto", choices=METHODS,
                        help="auto: qlora on a CUDA GPU and on a CPU with native bf16 "
                             "(AVX512-BF16 or AMX); elsewhere lora (on a CPU without native "
                             "bf16 an fp32 base trains faster than a 4-bit one), or qlora when "
                             "only a 4-bit base fits in memory. qlora: base in 4-bit NF4 "
                             "(bitsandbytes, also on a CPU) + LoRA; lora: LoRA on a bf16/fp32 "
                             "base; full: update every weight (tiny models only).")
    precision: str = field("auto", choices=("auto", "bf16", "fp32"),
                           help="Base weights precision for method=lora; full finetuning "
                                "always uses fp32. auto: bf16 where the GPU/CPU computes it "
                                "natively (CPU: AVX512-BF16 or AMX), else fp32.")
    lora_r: int = field(16, help="LoRA rank (size of the low-rank update).", range=(1, 1024))
    lora_alpha: int = field(32, help="LoRA scaling numerator (update is scaled by alpha/r).",
                             range=(1, 8192))
    lora_dropout: float = field(0.0, help="Dropout on the LoRA input during training (0 = off: "
                                          "on a CPU the dropout masks cost ~30% of a step; "
                                          "bench/README.md 'Training').")
    target_modules: str = field("all-linear",
                                help="Which layers get LoRA: 'all-linear' or a comma-separated "
                                     "list of module names (e.g. q_proj,v_proj).")
    epochs: float = field(3.0, help="Passes over the synthetic training set.", range=(0.01, 1000))
    max_steps: int = field(-1, help="Stop after this many optimizer steps (-1 = use epochs).",
                           range=(-1, 10_000_000))
    learning_rate: float = field(2e-4, help="Peak learning rate.")
    lr_scheduler: str = field("cosine", choices=SCHEDULERS, help="Learning-rate schedule.")
    warmup_steps: int = field(0, help="Linear warm-up steps at the start.", range=(0, 10_000_000))
    weight_decay: float = field(0.0, help="AdamW weight decay.", range=(0, 1))
    batch_size: int = field(2, help="Rows per device batch (activations dominate CPU memory: "
                                        "2 rows of ~350 tokens keep QLoRA under 4 GB).",
                            range=(1, 1024))
    grad_accum: int = field(4, help="Batches accumulated per optimizer step (effective batch "
                                      "= batch_size x grad_accum).", range=(1, 4096))
    merge_batches: bool = field(True, help="On a CPU, run the grad_accum batches of a step "
                                           "as one larger batch while it holds at most "
                                           "1,024 tokens (peak memory stays under 4 GB with "
                                           "the embedded model): the same rows per step and the "
                                           "same loss, faster (false = always batch_size "
                                           "rows per forward; accelerators never merge).")
    share_prefix: bool = field(True, help="Run the tokens all rows of a batch start with "
                                          "(instruction + demos) once per batch instead of "
                                          "once per row: the same loss and gradients, "
                                          "faster (off with gradient checkpointing or "
                                          "several processes).")
    max_length: int = field(0, help="Maximum tokens per row (prompt + completion); 0 = auto: "
                                    "the longest row, up to the model's context (8,192 for "
                                    "the embedded model) and what fits in memory.",
                            range=(0, 32768))
    long_rows: str = field("drop", choices=LONG_ROWS,
                           help="Rows longer than max_length: drop them (counted in the report), "
                                "fail, or cut the prompt's start. Never silent.")
    val_fraction: float = field(0.1, help="Share of synthetic rows held back to validate each "
                                          "epoch and pick the best one (0 = no validation).")
    min_val_rows: int = field(8, help="Validate only if at least this many rows can be held "
                                      "back; otherwise train on everything.",
                              range=(1, 1_000_000))
    select_best: bool = field(True, help="Keep the epoch with the lowest validation loss "
                                         "(the paper picked the best epoch).")
    save_strategy: str = field("epoch", choices=SAVE_STRATEGIES,
                               help="Write a resumable checkpoint every epoch or every "
                                    "save_steps optimizer steps.")
    save_steps: int = field(50, help="Checkpoint interval when save_strategy=steps.",
                            range=(1, 10_000_000))
    save_total_limit: int = field(3, help="Keep at most this many checkpoints on disk.",
                                  range=(1, 1000))
    logging_steps: int = field(1, help="Emit a loss event every this many steps.",
                               range=(1, 10_000_000))
    gradient_checkpointing: bool = field(False, help="Recompute activations to save memory "
                                                     "(slower).")
    attention: str = field("auto", choices=ATTENTION,
                           help="Attention kernel while training: auto = eager on a CPU (measured "
                                "faster than sdpa's CPU backward here), the model's default on a GPU.")
    seed: int = field(0, help="Random seed (set before LoRA init; reruns are identical on CPU).",
                      range=(0, 2**31 - 1))
    max_label_share: float = field(0.9, help="Classification: refuse to train when one label "
                                             "has at least this share of the training rows "
                                             "while the demos' labels spread (the tuned model "
                                             "would learn to answer that label to everything); "
                                             "1 = off. --force trains anyway.",
                                   range=(0.5, 1.0))
    force: bool = field(False, help="Train even on a degenerate dataset (one label, identical "
                                    "completions, one label far above the demos' share).")

    def __post_init__(self) -> None:
        check_choices(self)
        check(self.lora_r >= 1, "lora_r", "must be >= 1.")
        check(self.lora_alpha >= 1, "lora_alpha", "must be >= 1.")
        check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", "must be in [0, 1).")
        check(self.target_modules.strip() != "" and bool(self.target_module_list),
              "target_modules", "must name at least one module ('all-linear' or e.g. "
                                "q_proj,v_proj).")
        check(self.epochs > 0, "epochs", "must be > 0.")
        check(self.max_steps == -1 or self.max_steps >= 1, "max_steps", "must be -1 or >= 1.")
        check(0 < self.learning_rate < 1, "learning_rate", "must be in (0, 1).")
        check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0.")
        check(self.weight_decay >= 0, "weight_decay", "must be >= 0.")
        check(self.batch_size >= 1, "batch_size", "must be >= 1.")
        check(self.grad_accum >= 1, "grad_accum", "must be >= 1.")
        check(self.max_length == 0 or 16 <= self.max_length <= 32768, "max_length",
              "must be 0 (auto) or between 16 and 32768.")
        check(0.0 <= self.val_fraction < 0.5, "val_fraction", "must be in [0, 0.5).")
        check(self.min_val_rows >= 1, "min_val_rows", "must be >= 1.")
        check(self.save_steps >= 1, "save_steps", "must be >= 1.")
        check(self.save_total_limit >= 1, "save_total_limit", "must be >= 1.")
        check(self.logging_steps >= 1, "logging_steps", "must be >= 1.")

    def resolve(self, device: str) -> TrainConfig:
        """This config with ``method`` and ``precision`` 'auto' made concrete for ``device``."""
        from selfguide.models import hardware
        method = self.method if self.method != "auto" else (
            "qlora" if device == "cuda" or (device == "cpu" and hardware.bf16_is_fast("cpu"))
            else "lora")
        precision = self.precision if self.precision != "auto" else \
            hardware.dense_precision(device)
        if (method, precision) == (self.method, self.precision):
            return self
        return dataclasses.replace(self, method=method, precision=precision)

    @property
    def model_precision(self) -> str:
        """The ``ModelConfig.precision`` the base is loaded in (after :meth:`resolve`)."""
        check(self.method != "auto", "method", "resolve 'auto' for a device first.")
        check(self.precision != "auto" or self.method in ("qlora", "full"), "precision",
              "resolve 'auto' for a device first.")
        if self.method == "qlora":
            return "4bit"
        if self.method == "full":
            return "fp32"
        return self.precision

    @property
    def target_module_list(self) -> str | list[str]:
        t = self.target_modules.strip()
        return t if t == "all-linear" else [m.strip() for m in t.split(",") if m.strip()]


# Named settings for ``selfguide run --preset``; see bench/README.md (ablations) for why.
PRESETS: dict[str, dict] = {
    "quick": {"epochs": 3.0, "learning_rate": 2e-4, "lora_r": 16, "lora_alpha": 32},
    "paper": {"epochs": 5.0, "learning_rate": 1e-4, "lora_r": 16, "lora_alpha": 32},
}
