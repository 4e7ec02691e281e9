"""One view module per studio page (``studio/pages/<page>.py`` stays a thin
entry): what the page renders, read from the library.

Shared parts live in ``studio.app``.
"""
