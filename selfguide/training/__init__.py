"""Finetuning: QLoRA/LoRA/full training on a run's dataset, its rows as
token ids, the shared-prefix forward, multi-process launches, and whether a configuration fits.

It does not evaluate (``selfguide.evaluation.predict``) or export (``selfguide.export``).
"""
