"""Models held by the Streamlit process: one cached copy per distinct model, read-only.

What it does: loads the base model chosen on the Model page (for "try a prompt") and, on
the Compare page, the base model plus a run's adapter, through ``selfguide.models.loading`` and
``selfguide.evaluation.predict``; caches them with ``st.cache_resource`` so reruns never reload
(``max_entries`` keeps one of each kind, so switching models releases the old one). Trying
a prompt on a cached model is ``selfguide.models.tryout``. With ``backend`` openai it connects to the
server instead (``get_server``: an ``OpenAIGenerator``, no weights in this process).

What it does not do: synthesize, train or evaluate at scale (those are subprocess jobs,
``studio.app.jobs``), or hold per-session state.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import streamlit as st

from selfguide.runs.rundir import RunDir
from selfguide.settings.fields import ModelConfig, from_dict


@dataclasses.dataclass
class CachedModel:
    """A loaded model and the generator that drives it."""

    config: dict
    info: dict
    generator: Any


def _cfg_key(cfg: ModelConfig | dict) -> str:
    d = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    return json.dumps(d, sort_keys=True)


def build_model(cfg: ModelConfig) -> CachedModel:
    """Load ``cfg`` (no caching). Tests replace this to avoid loading weights."""
    from selfguide import backends
    from selfguide.models import loading as models
    lm = models.load_model(cfg)
    gen = backends.get_generator("hf", loaded=lm)
    info = {**_info_dict(lm.info), "detected": gen.detected(cfg.chat)}
    return CachedModel(config=dataclasses.asdict(cfg), info=info, generator=gen)


@dataclasses.dataclass
class CachedPair:
    """Base and tuned generators of a run (one model; the base is the adapter disabled)."""

    before: Any
    after: Any
    chat: bool
    adapter: dict


def build_tuned(run_dir: Path) -> CachedPair:
    """Load a run's base model with its trained adapter (no caching)."""
    from selfguide.evaluation import predict as evaluation
    from selfguide.settings.evaluation import EvalConfig

    before, after, chat, man = evaluation.build_generators(Path(run_dir), EvalConfig())
    return CachedPair(before=before, after=after, chat=chat, adapter=dict(man or {}))


def _info_dict(info: Any) -> dict:
    if hasattr(info, "to_dict"):
        return info.to_dict()
    if dataclasses.is_dataclass(info):
        return dataclasses.asdict(info)
    return dict(info or {})


# What sits in _cached_model's single slot, for sessions that did not load it themselves
# (a browser refresh starts a new session; the model stays loaded in this process).
_IN_CACHE: dict[str, dict] = {}


@st.cache_resource(max_entries=1, show_spinner="Loading the model (first time only)…")
def _cached_model(key: str) -> CachedModel:
    model = build_model(from_dict(ModelConfig, json.loads(key)))
    _IN_CACHE.clear()
    _IN_CACHE["model"] = {"config": dict(model.config), "info": dict(model.info)}
    return model


def cached_model_summary() -> dict | None:
    """``{"config", "info"}`` of the model this studio process holds loaded, if any."""
    return _IN_CACHE.get("model")


@st.cache_resource(max_entries=1, show_spinner="Loading the finetuned model…")
def _cached_tuned(run_dir: str, stamp: float) -> CachedPair:
    return build_tuned(Path(run_dir))


def get_model(cfg: ModelConfig | dict) -> CachedModel:
    """The cached model for ``cfg`` (loads it on first use; raises ``ModelError``)."""
    return _cached_model(_cfg_key(cfg))


def get_tuned(run_dir: Path) -> CachedPair:
    """The cached base+adapter model of ``run_dir``; reloaded when the adapter changes."""
    adapter = RunDir(run_dir).adapter_dir
    stamp = max((p.stat().st_mtime for p in adapter.glob("*") if p.is_file()), default=0.0)
    return _cached_tuned(str(run_dir), stamp)


def build_server(cfg: ModelConfig) -> CachedModel:
    """Connect to ``cfg``'s OpenAI-compatible server (no caching): lists its models and
    checks the served one against ``cfg.model``. Raises ``ServerError`` (unreachable,
    malformed answer), ``ModelMismatch`` (another model, unless ``confirm_model``) or
    ``ConfigError`` (several models and no ``served_model``)."""
    from selfguide import backends

    # one quick retry: the page should answer at once when the server is not there
    gen = backends.get_generator("openai", config=cfg, retries=1, backoff=0.2)
    server = gen.server.to_dict()
    info = {**server, "ref": server["served_model"], "precision": "served",
            "device": server["base_url"], "backend": "openai"}
    return CachedModel(config=dataclasses.asdict(cfg), info=info, generator=gen)


@st.cache_resource(max_entries=1, show_spinner="Connecting to the server…")
def _cached_server(key: str) -> CachedModel:
    return build_server(from_dict(ModelConfig, json.loads(key)))


def get_server(cfg: ModelConfig | dict, *, reconnect: bool = False) -> CachedModel:
    """The cached server connection for ``cfg``; ``reconnect`` asks the server again (the
    Model page's Connect button: the server may have been started or changed since)."""
    if reconnect:
        _cached_server.clear()
    return _cached_server(_cfg_key(cfg))


def clear() -> None:
    """Forget every cached model (tests; the Model page's 'unload')."""
    _cached_model.clear()
    _cached_server.clear()
    _cached_tuned.clear()
    _IN_CACHE.clear()
