"""Settings: the frozen-dataclass helpers (help texts that feed the CLI,
the studio and the README), the model, sampling, training and evaluation configs, and the
command lines built back from them for stage jobs.

A method's own synthesis and filter settings live in its folder (``selfguide.methods``).
"""
