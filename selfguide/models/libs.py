"""What the third-party libraries need from us before use: their internal notes silenced,
bitsandbytes imported without its import-time fetch of hub kernels.

Nothing here changes what a model computes; it keeps job logs to what a user can act on,
and keeps hub code from running unasked. No selfguide imports; the libraries are imported
inside the functions.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

# Deprecation notices the libraries raise about their own internals (peft and the trainer
# read ``is_gradient_checkpointing``; generation passes ``past_key_values``): nothing a user
# can act on, so they stay out of job logs. Matched by category and message, nothing else.
_QUIET_WARNINGS = ((FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
                   (FutureWarning, r".*`past_key_values`.* deprecated"))
_QUIET_LOG_NOTES = ("`past_key_values`/`cache_params` are deprecated",)
# bitsandbytes >= 0.50, on an AVX512-BF16 CPU, logs at import that it could not fetch a
# 4-bit matmul kernel from the Hugging Face hub, telling the user to set trust_remote_code:
# advice we never want shown (:func:`import_bitsandbytes` keeps the fetch from happening;
# its bundled kernel serves instead).
_QUIET_HUB_KERNEL = ("bitsandbytes.backends.cpu.ops",
                     "Failed to load CPU gemm_4bit_forward from kernels-community")


def quiet_deprecations() -> None:
    """Silence the libraries' internal deprecation notices (idempotent; see above)."""
    for category, message in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, drop in (("transformers.utils.generic", _drop_library_notes),
                       (_QUIET_HUB_KERNEL[0], _drop_hub_kernel_note)):
        logger = logging.getLogger(name)
        if drop not in logger.filters:
            logger.addFilter(drop)


def _drop_hub_kernel_note(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_QUIET_HUB_KERNEL[1])


def _drop_library_notes(record: logging.LogRecord) -> bool:
    return not any(str(record.msg).startswith(n) for n in _QUIET_LOG_NOTES)


_ABSENT = object()


def import_bitsandbytes() -> Any | None:
    """bitsandbytes, imported without its import-time fetch of hub kernels; None if absent.

    bitsandbytes >= 0.50 on an AVX512-BF16 CPU asks the ``kernels`` package, at import, for
    a 4-bit matmul kernel from the Hugging Face hub: compiled code from the hub, run without
    the user asking (offline, a cached copy loads with no trust check at all), and a
    warning telling the user to set trust_remote_code when it cannot. The import runs with
    ``kernels`` hidden, so bitsandbytes keeps its bundled kernel, and the note it logs then
    is dropped. peft imports bitsandbytes on its own when it wraps a model, so the paths
    that reach peft call this first.
    """
    import sys

    if "bitsandbytes" in sys.modules:
        return sys.modules["bitsandbytes"]  # None where a test hid it
    quiet_deprecations()  # before bitsandbytes' import-time notes
    saved = sys.modules.get("kernels", _ABSENT)
    sys.modules["kernels"] = None  # type: ignore[assignment]  # `from kernels import` fails
    try:
        import bitsandbytes
    except Exception:  # noqa: BLE001 - ImportError, or a broken native library at import
        return None
    finally:
        if saved is _ABSENT:
            sys.modules.pop("kernels", None)
        else:
            sys.modules["kernels"] = saved
    return bitsandbytes
