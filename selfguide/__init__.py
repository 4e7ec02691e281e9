"""selfguide: turn a language model into a task expert with its own synthetic data.

This package is importable without torch: heavy libraries (torch, transformers, peft)
are imported inside the functions that need them, so the CLI's ``--help``, the pure core
(prompts, parsing, filters, voting, metrics) and the studio's pages load fast.
It does not run anything at import time: no seeding, no I/O.
"""

__version__ = "0.1.0"
