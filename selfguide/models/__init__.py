"""Models: where one lives (references, GGUF conversion), loading it in a
precision, the hardware it computes on, finetuned adapters, and trying it on one input.

It does not decode in batches (``selfguide.backends``) or train (``selfguide.training.trainer``).
"""
