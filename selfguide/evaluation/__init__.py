"""Evaluation: base vs tuned predictions on held-out rows, the metrics,
fast ROUGE-L and the before/after tables.

It does not train or synthesize.
"""
