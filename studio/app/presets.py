"""The settings presets the studio's forms offer: the config modules' named presets plus a
studio-only ``tiny`` one for a first look (a few minutes with the embedded model on a CPU).

What it does: composes, for each settings form, ``{preset name: field overrides}`` from
``selfguide.configs.*.PRESETS`` (the same presets as ``selfguide run --preset``), with
``tiny`` first and ``custom`` (``None``: keep what is in the form) last.

What it does not do: validate settings (the config dataclasses do) or draw widgets
(``studio.app.widgets.preset_form``).
"""

from __future__ import annotations

from selfguide.methods.selfguide import config as syncfg
from selfguide.settings import training as traincfg

# Studio-only: a few rounds of SELF-GUIDE synthesis.
TINY_SYNTHESIS = {"rounds": 2, "prompts_per_round": 6, "n_samples": 3,
                  "max_generated_examples": 3, "annotate_batch": 12}
# Studio-only: a handful of training steps, done in about a minute on a CPU.
TINY_TRAIN = {"max_steps": 6, "batch_size": 4, "val_fraction": 0.0, "save_strategy": "steps",
              "save_steps": 3, "logging_steps": 1, "epochs": 1.0}
# The Compare page's first evaluation settings: every held-out example of the task, up to
# a cap that keeps a CPU evaluation to minutes (the sentiment example ships 20).
FIRST_EVAL = {"limit": 50, "bootstrap": 200}

# ``quick`` first: the Synthesize page's default, as the README says (issue 15, item 1).
SYNTHESIS: dict[str, dict | None] = {
    "quick": syncfg.PRESETS["quick"]["synthesis"], "tiny": TINY_SYNTHESIS,
    **{k: v["synthesis"] for k, v in syncfg.PRESETS.items() if k != "quick"}, "custom": None}
TRAIN: dict[str, dict | None] = {"tiny": TINY_TRAIN, **traincfg.PRESETS, "custom": None}
# The preset the Finetune page shows first: the README's "First minutes" walk uses quick.
TRAIN_DEFAULT = "quick"

SYNTHESIS_HELP = ("quick: ≤ 10 min with the embedded model, ≥ 60 kept examples (the "
                  "README's choice); tiny: a first look in a few minutes on a CPU; paper: "
                  "the settings of the SELF-GUIDE paper.")
TRAIN_HELP = ("tiny: a few steps to see the loop work; quick: 3 epochs at learning rate 2e-4 "
              "(the README's first walk); paper: 5 epochs at 1e-4, as in the SELF-GUIDE paper. "
              "The same presets as the command line's.")
