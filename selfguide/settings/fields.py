"""Configuration helpers and the shared model/sampling configs.

Every configuration in selfguide is a frozen dataclass whose fields carry
``metadata={"help": ...}`` (use :func:`field`) and are validated in ``__post_init__``.
The help text is the single source for CLI ``--help`` (:func:`add_dataclass_args`),
the studio's widget ``help=`` (:func:`field_help`) and the README tables
(:func:`markdown_table`). Stage configs live in ``selfguide/configs/``.

This module does not read files or environment variables.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from selfguide.errors import ConfigError

T = TypeVar("T")

PRECISIONS = ("auto", "4bit", "8bit", "bf16", "fp32")
BACKENDS = ("hf", "openai")


# Every number in every config stays inside these bounds (no C overflow in torch/numpy,
# no endless loops from 1e300 or inf); fields with a ``range`` are tighter.
INT_LIMIT = 2**31 - 1


def field(default: Any = dataclasses.MISSING, *, help: str, choices: tuple | None = None,
          default_factory: Any = dataclasses.MISSING, cli: bool = True,
          range: tuple[float, float] | None = None) -> Any:  # noqa: A002 - reads naturally
    """A dataclass field with help text (and optional choices / inclusive range) in its
    metadata. The range is enforced by :func:`check_choices` and shown in ``--help``."""
    meta = {"help": help, "choices": choices, "cli": cli, "range": range}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_help(cls: type, name: str) -> str:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(name)


def check(cond: bool, field_name: str, message: str) -> None:
    """Raise ``ConfigError`` naming ``field_name`` unless ``cond``."""
    if not cond:
        raise ConfigError(f"Invalid value for '{field_name}': {message}")


def check_choices(cls_or_obj: Any) -> None:
    """Validate every field's ``choices`` and ``range``, and that every number is finite and
    within ``±INT_LIMIT`` (called from each config's ``__post_init__``)."""
    import math

    for f in dataclasses.fields(cls_or_obj):
        v = getattr(cls_or_obj, f.name)
        choices = f.metadata.get("choices")
        if choices:
            check(v in choices, f.name, f"{v!r} is not one of {', '.join(map(str, choices))}.")
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        check(math.isfinite(v) and abs(v) <= INT_LIMIT, f.name,
              f"{v!r} is out of range (numbers must be finite and within ±{INT_LIMIT}).")
        rng = f.metadata.get("range")
        if rng is not None:
            check(rng[0] <= v <= rng[1], f.name, f"{v!r} is not in {range_text(rng)}.")


def range_text(rng: tuple[float, float]) -> str:
    """``lo..hi`` as written (integers in full: ``0..2147483647``)."""
    return f"{rng[0]}..{rng[1]}"


def to_dict(obj: Any) -> dict:
    """A JSON-able dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(obj)


def _coerce(tp: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, name) if len(args) == 1 else value
    if origin is tuple or tp is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return tuple(value)
    if tp is bool and isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"Invalid value for '{name}': {value!r} is not a boolean.")
    if tp in (int, float) and not isinstance(value, bool):
        try:
            v = tp(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ConfigError(f"Invalid value for '{name}': {value!r:.40} is not a number "
                              "(or is out of range).") from exc
        if tp is float and isinstance(v, float) and v != v:
            raise ConfigError(f"Invalid value for '{name}': {value!r} is not a number.")
        if tp is int and isinstance(value, float) and value != int(value):
            raise ConfigError(f"Invalid value for '{name}': {value!r} is not an integer.")
        return v
    return value


def from_dict(cls: type[T], data: dict | None, *, strict: bool = True) -> T:
    """Build ``cls`` from a dict, coercing simple types; unknown keys raise if ``strict``."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown and strict:
        raise ConfigError(f"Unknown setting(s) for {cls.__name__}: {', '.join(unknown)}.",
                          hint=f"Known settings: {', '.join(sorted(names))}.")
    kwargs = {k: _coerce(hints[k], v, k) for k, v in data.items() if k in names}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"Invalid settings for {cls.__name__}: {exc}") from exc


def replace(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` with coercion and validation."""
    merged = {**to_dict(obj), **{k: v for k, v in changes.items() if v is not None}}
    return from_dict(type(obj), merged)


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, *,
                       prefix: str = "", exclude: tuple[str, ...] = ()) -> None:
    """Add ``--field-name`` options for every field of ``cls`` (default None = keep)."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.metadata.get("cli", True):
            continue
        opt = "--" + (prefix + f.name).replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        rng = f.metadata.get("range")
        bounds = f"range {range_text(rng)}; " if rng else ""
        helptext = f"{f.metadata.get('help', '')} ({bounds}default: {default!r})".replace(
            "%", "%%")
        tp = hints[f.name]
        kw: dict[str, Any] = {"dest": prefix + f.name, "default": None, "help": helptext}
        if f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
        if tp is bool:
            kw["type"] = _bool_arg(f.name)
            kw["metavar"] = "{true,false}"
        group.add_argument(opt, **kw)


def _bool_arg(name: str) -> Any:
    """An argparse ``type`` for booleans: a bad value is a usage error (exit 2), not a
    ``ConfigError`` escaping ``parse_args`` (argparse only catches its own error types)."""
    def parse(text: str) -> bool:
        try:
            return _coerce(bool, text, name)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "boolean"
    return parse


def overrides_from_args(args: argparse.Namespace, cls: type, *, prefix: str = "") -> dict:
    """The options the user actually gave for ``cls`` (those not None)."""
    out = {}
    for f in dataclasses.fields(cls):
        v = getattr(args, prefix + f.name, None)
        if v is not None:
            out[f.name] = v
    return out


def markdown_table(cls: type) -> str:
    """A README table of a config's fields: name, default, help."""
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "")
        helptext = f.metadata.get("help", "").replace("|", "\\|")
        choices = f.metadata.get("choices")
        if choices:
            helptext += " One of: " + ", ".join(f"`{c}`" for c in choices) + "."
        if f.metadata.get("range"):
            helptext += f" Range: {range_text(f.metadata['range'])}."
        rows.append(f"| `{f.name}` | `{default!r}` | {helptext} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- shared configs

@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to sample completions. ``temperature == 0`` means greedy decoding."""

    temperature: float = field(0.7, help="Sampling temperature; 0 = greedy (deterministic).")
    top_p: float = field(1.0, help="Nucleus sampling: keep the smallest token set with this "
                                   "total probability (1.0 = off).")
    top_k: int = field(0, help="Keep only the k most likely tokens (0 = off).",
                       range=(0, 1_000_000))
    max_new_tokens: int = field(64, help="Maximum tokens generated per completion; clamped to "
                                         "the model's context.")
    stop: tuple[str, ...] = field((), help="Stop strings: a completion is cut at the first one.")
    seed: int = field(0, help="Random seed; the same seed and inputs reproduce the outputs.",
                      range=(0, INT_LIMIT))
    max_time: float | None = field(None, help="Wall-clock limit in seconds for a prompt's "
                                              "completions, from when its decoding starts "
                                              "(None = no limit).", range=(0.001, 86400))
    stop_loops: bool = field(False, help="End a completion that repeats one phrase (up to "
                                         "12 tokens) over and over, keeping its first "
                                         "occurrence (a loop would run to the token limit).")

    def __post_init__(self) -> None:
        check(0.0 <= self.temperature <= 5.0, "temperature", "must be between 0 and 5.")
        check(0.0 < self.top_p <= 1.0, "top_p", "must be in (0, 1].")
        check(self.top_k >= 0, "top_k", "must be >= 0.")
        check(isinstance(self.max_new_tokens, int) and 1 <= self.max_new_tokens <= 32768,
              "max_new_tokens", "must be an integer between 1 and 32768.")
        check(self.max_time is None or self.max_time > 0, "max_time", "must be > 0 or None.")
        check_choices(self)
        object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which model to load and how."""

    model: str = field("embedded", help="'embedded' (SmolLM2-135M-Instruct, offline), a local "
                                        "Hugging Face directory, a .gguf file, or a hub id.")
    precision: str = field("auto", choices=PRECISIONS,
                           help="Weights precision: 4bit (bitsandbytes NF4), 8bit, bf16, fp32, "
                                "or auto (4bit on CUDA; on a CPU bf16 where it has native bf16 "
                                "(AVX512-BF16 or AMX), else fp32, which is several times faster "
                                "than emulated bf16).")
    device: str = field("auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="Device: auto picks cuda > mps > cpu.")
    trust_remote_code: bool = field(False, help="Allow the model's own Python code to run. "
                                                "Only for models you trust.")
    chat: bool = field(True, help="Wrap prompts in the model's chat template when it has one.")
    backend: str = field("hf", choices=BACKENDS,
                         help="Where generation runs: hf (in-process transformers) or openai "
                              "(an OpenAI-compatible server: vLLM, llama.cpp, Ollama; set "
                              "base_url). Training always loads the model itself.")
    base_url: str = field("", help="With backend openai: the server's API root, e.g. "
                                   "http://127.0.0.1:8000/v1.")
    served_model: str = field("", help="With backend openai: the model name the server serves "
                                       "('' = its only model).")
    confirm_model: bool = field(False, help="With backend openai: accept a served model name "
                                            "that does not look like 'model' (same weights, "
                                            "other name).")
    concurrency: int = field(8, help="With backend openai: requests in flight at once.",
                             range=(1, 256))
    request_timeout: float = field(300.0, help="With backend openai: seconds per request "
                                               "before it is retried.", range=(1, 86400))

    def __post_init__(self) -> None:
        check(isinstance(self.model, str) and self.model.strip() != "", "model",
              "must name a model ('embedded', a path or a hub id).")
        check_choices(self)
        if self.backend == "openai" or self.base_url:
            check(_is_http_url(self.base_url), "base_url",
                  f"{self.base_url!r} is not an http:// or https:// URL (backend openai needs "
                  "the server's API root, e.g. http://127.0.0.1:8000/v1).")


# Fields of ModelConfig that say how generation reaches the model, not which model (that is
# ``model``; the server's name for it is checked against it): changing them does not
# invalidate generated rows, so a run may resume through a server, and runs made before
# these fields existed still resume.
TRANSPORT_FIELDS = ("backend", "base_url", "served_model", "confirm_model", "concurrency",
                    "request_timeout")


def _is_http_url(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
