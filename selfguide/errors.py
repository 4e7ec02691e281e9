"""User-facing errors.

Every failure a person can fix is a ``SelfGuideError`` subclass whose message says what
went wrong (naming the field, line or path) and what to do. The CLI prints the message and
exits with status 2; the studio shows it with ``st.error``. Programming errors are left as
ordinary exceptions. This module defines the hierarchy only; it does not log or format.
"""

from __future__ import annotations


class SelfGuideError(Exception):
    """Base class: a problem the user can act on. ``hint`` says what to do.

    ``hint`` speaks to the command line and files (options, keys); ``ui_hint``, where
    given, says the same in the words of the studio's pages (settings and buttons as the
    pages show them) and replaces ``hint`` there. ``str()`` is the CLI's text.
    """

    def __init__(self, message: str, *, hint: str | None = None, ui_hint: str | None = None):
        self.message = message
        self.hint = hint
        self.ui_hint = ui_hint
        super().__init__(message if not hint else f"{message}\nHint: {hint}")


class ConfigError(SelfGuideError):
    """A configuration value is out of range or inconsistent."""


class TaskError(SelfGuideError):
    """A task file or task spec is malformed or inconsistent."""


class InvalidRunName(SelfGuideError):
    """A run name would escape the workspace or is not a valid directory name."""


class RunNotFound(SelfGuideError):
    """The named run does not exist in the workspace."""


class CorruptFile(SelfGuideError):
    """A file in the run directory cannot be parsed (names the file and line)."""


class RunFileError(CorruptFile):
    """A run file is missing but required, unparseable, or of the wrong shape (names the
    run, the file, the field, and the stage that rewrites it)."""


class ModelError(SelfGuideError):
    """A model reference cannot be resolved or loaded."""


class ModelNotFound(ModelError):
    """The model path does not exist or is not a model directory."""


class UnsupportedModel(ModelError):
    """The model's architecture or file format is not supported."""


class RemoteCodeRefused(ModelError):
    """The model needs ``trust_remote_code`` and it was not granted."""


class UnsafeWeights(ModelError):
    """Only pickle weights (``*.bin``/``*.pt``) were found; safetensors are required."""


class ServerError(ModelError):
    """A generation server cannot be reached, refused a request or answered something
    malformed (``backend=openai``)."""


class ModelMismatch(ModelError):
    """The generation server serves another model than the one being finetuned."""


class ScoringUnavailable(ModelError):
    """The backend cannot score fixed continuations (a server without prompt logprobs):
    rank/calibrated labelling and label-constrained evaluation cannot run."""


class QuantizationUnavailable(ModelError):
    """4-bit/8-bit was asked for where bitsandbytes cannot provide it."""


class AdapterMismatch(ModelError):
    """An adapter was trained on a different base model."""


class DatasetError(SelfGuideError):
    """The training/eval dataset is empty, degenerate or malformed."""


class JobError(SelfGuideError):
    """A background job cannot be started, found or cancelled."""


class JobAlreadyRunning(JobError):
    """A job for the same run and stage is already running."""


class Cancelled(SelfGuideError):
    """The work was cancelled by the user."""


class StorageError(SelfGuideError):
    """Disk full, read-only workspace or another I/O failure (names the path)."""


class OutputPathError(SelfGuideError):
    """An output path outside the workspace may not be written (exists, is a link, a
    device, a FIFO, a non-empty directory...)."""


class ResourceError(SelfGuideError):
    """The configuration needs more memory (or another resource) than the machine has."""


class StageBusy(JobError):
    """A stage that writes this stage's inputs is running on the same run."""
