"""The Model page's parts: where generation runs, the server's fields, loading or connecting,
what was loaded (and before loading, the memory it will need), and the try-a-prompt box.

What it does: draws the choice between the in-process model (``backend`` hf) and an
OpenAI-compatible server (``backend`` openai: vLLM, llama.cpp, Ollama) with the server's
``ModelConfig`` fields; the "Load model" / "Connect" button and its errors in the page's
words (``ServerError``, ``ModelMismatch``); the loaded model's figures or the server's model
list; and one greedy completion through whichever it is (``selfguide.models.tryout``).

What it does not do: load or connect itself (``studio.app.resources``), save the settings
(``studio.app.state``), or start jobs (the Synthesize page builds their argv from the saved
model config, so ``--backend openai --base-url ...`` travel with it).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from selfguide.errors import ModelMismatch, SelfGuideError
from selfguide.models import tryout
from selfguide.settings.fields import TRANSPORT_FIELDS, ModelConfig, field_help, from_dict, to_dict
from studio.app import resources, state, widgets

GENERATION = {
    "hf": "In this process (loads the model's weights here)",
    "openai": "Generate through a server (vLLM, llama.cpp, Ollama: OpenAI-compatible)",
}
SERVER_FIELDS = ["base_url", "served_model", "concurrency", "request_timeout",
                 "confirm_model"]
SERVER_LABELS = {"base_url": "Base URL", "served_model": "Served model",
                 "concurrency": "Concurrency", "request_timeout": "Request timeout (s)",
                 "confirm_model": "Confirm model: it is the same model under another name"}


def backend_choice(saved: dict) -> str:
    """The radio between the in-process model and a server; returns the backend name."""
    now = saved.get("backend", "hf")
    return st.radio("Generation", list(GENERATION), format_func=GENERATION.get,
                    index=list(GENERATION).index(now if now in GENERATION else "hf"),
                    key=state.widget_key("model", "backend"),
                    help=field_help(ModelConfig, "backend"))


def server_fields(saved: dict) -> dict:
    """The server's settings (``ModelConfig`` fields) with what the choice means."""
    st.caption("Synthesis sends its prompts to the server. The server must serve the same "
               "model as the one chosen under **Source** above: that is the model the run "
               "finetunes, and training and evaluation always load it in this process "
               "(only synthesis goes through the server).")
    values = widgets.config_form(ModelConfig, "model_server", base=saved,
                                 include=SERVER_FIELDS, columns=2, labels=SERVER_LABELS)
    st.caption("Rank and calibrated labelling (label strategy *rank* or *calibrated*, and "
               "*auto*'s choice between them) need the prompt's log-probabilities from the "
               "server: vLLM gives them; llama.cpp's server and Ollama do not, so use label "
               "strategy *vote* or *target* with those.")
    return values


def load_or_connect(cfg: ModelConfig | None, backend: str) -> Any:
    """The "Load model" (``backend`` hf) or "Connect" (openai) button; the model or the
    connection when there is one for ``cfg`` in this session, else None."""
    server = backend == "openai"
    if server:
        pressed = st.button("Connect", type="primary", icon=":material/lan:",
                            disabled=cfg is None)
    else:
        pressed = st.button("Load model", type="primary", icon=":material/download:",
                            disabled=cfg is None)
    if cfg is None:
        return None
    loaded = state.loaded_model()
    if not (pressed or (loaded is not None and loaded["config"] == state.model_config())):
        return None
    try:
        model = (resources.get_server(cfg, reconnect=pressed) if server
                 else resources.get_model(cfg))
    except ModelMismatch as exc:
        widgets.show_error(exc)
        st.info("If the server's model has the same weights under another name, tick "
                "**Confirm model** and connect again.", icon=":material/info:")
        return None
    except SelfGuideError as exc:
        widgets.show_error(exc)
        return None
    state.set_loaded_model(state.model_config(), model.info)
    return model


def show_estimate(cfg: ModelConfig, *, quiet: bool = False) -> bool:
    """Before loading: the memory the model needs at the chosen precision against what this
    machine has free (from the checkpoint's headers; nothing for a hub id). ``quiet``: only
    a problem is shown. False when loading would fail."""
    from selfguide.errors import ResourceError
    from selfguide.models import loading, memory

    try:
        estimates = loading.memory_estimate(cfg)
    except SelfGuideError:  # a bad reference: "Load model" (or the job) shows it in full
        return True
    fits = True
    for est in estimates:
        text = f"Memory: this model {est.summary()}."
        if est.verdict == "too_large":
            fits, advice = False, ""
            try:  # the advice the refusal itself gives (the precisions that exist below)
                memory.check(est, cfg.model)
            except ResourceError as exc:
                advice = exc.ui_hint or exc.hint or ""
            where = " on the Model page" if quiet else ""
            st.error(f"{text} Loading it would fail. {advice.rstrip('.')}{where}.",
                     icon=":material/memory:")
        elif est.verdict == "tight":
            st.warning(f"{text} That is close to the limit.", icon=":material/memory:")
        elif not quiet:
            st.caption(text)
    return fits


def show_model(info: dict) -> None:
    """The in-process model's size, memory, device, precision and load time, and what was
    detected about it (family, chat or base, context length, decode path)."""
    c = st.columns(5)
    n = info.get("n_params")
    c[0].metric("Parameters", f"{n / 1e6:.1f} M" if isinstance(n, (int, float)) else "?")
    mem = info.get("memory_bytes")
    c[1].metric("Memory", f"{mem / 2**20:.0f} MiB" if isinstance(mem, (int, float)) else "?")
    c[2].metric("Device", str(info.get("device", "?")))
    c[3].metric("Precision", str(info.get("precision", info.get("dtype", "?"))))
    secs = info.get("load_seconds")
    c[4].metric("Load time", f"{secs:.1f} s" if isinstance(secs, (int, float)) else "?")
    if info.get("has_chat_template") is False:
        st.info("This model has no chat template: prompts are sent as plain text.")
    if detected := info.get("detected"):  # family, chat or base, context, decode path
        st.caption("Detected: " + " · ".join(f"**{k}** {v}" for k, v in detected.items()))
    from selfguide.models import hardware
    if note := hardware.slow_bf16_note(str(info.get("precision")), str(info.get("device"))):
        st.warning(note, icon=":material/speed:")


def _run_and_chosen(run_dir: Any) -> tuple[ModelConfig, ModelConfig] | None:
    """(the model the run's synthesis recorded, the Model page's choice); None when the run
    has recorded none (an error is shown when its config cannot be read)."""
    try:
        recorded = (run_dir.read_config() or {}).get("model")
        if not recorded:
            return None
        return run_dir.model_config(), from_dict(ModelConfig, state.model_config(),
                                                 strict=False)
    except SelfGuideError as exc:
        widgets.show_error(exc)
        return None


def run_model_note(run_dir: Any) -> None:
    """On the Finetune and Compare pages: the model this run trains and evaluates (the one
    its synthesis recorded, as ``selfguide run --model`` does), and a warning when the Model
    page now has another one chosen."""
    if (pair := _run_and_chosen(run_dir)) is None:
        return
    cfg, chosen = pair
    mode = "chat template" if cfg.chat else "plain prompts"
    st.caption(f"Model: **{cfg.model}** ({cfg.precision}, {mode}), recorded by this run's "
               "synthesis; training and evaluation load it.")
    if (chosen.model, chosen.chat) != (cfg.model, cfg.chat):
        st.warning(f"The Model page now has **{chosen.model}** chosen, but this run's data "
                   f"was synthesized with **{cfg.model}**, so this run keeps that one. To "
                   "finetune the new choice, start a new run and synthesize with it.",
                   icon=":material/swap_horiz:")


def _generation_settings(cfg: ModelConfig) -> dict:
    """The model settings generated rows depend on (not how a server is reached)."""
    return {k: v for k, v in to_dict(cfg).items() if k not in TRANSPORT_FIELDS}


def synthesis_model_note(run_dir: Any) -> None:
    """On the Synthesize page of a run that holds generated data: a warning when the Model
    page's choice is not the model that data was made with (synthesis refuses to mix them)."""
    if (pair := _run_and_chosen(run_dir)) is None:
        return
    cfg, chosen = pair
    if _generation_settings(cfg) != _generation_settings(chosen):
        st.warning(f"This run's data was generated with **{cfg.model}** ({cfg.precision}, "
                   f"chat {'on' if cfg.chat else 'off'}); the Model page now has "
                   f"**{chosen.model}** ({chosen.precision}, chat "
                   f"{'on' if chosen.chat else 'off'}). A run keeps one model: tick "
                   "*Discard data generated earlier* to start over with the new choice, or "
                   "synthesize in a new run.", icon=":material/swap_horiz:")


def show_server(info: dict) -> None:
    """The connected server: its URL, the model synthesis will ask for, all it serves."""
    st.success("Connected. Synthesis jobs will send their prompts to this server.",
               icon=":material/lan:")
    c = st.columns(2)
    c[0].metric("Server", str(info.get("base_url", "?")))
    c[1].metric("Served model", str(info.get("served_model", "?")))
    if info.get("confirmed"):
        st.warning("You confirmed that the served model is the model being finetuned, "
                   "although its name differs.", icon=":material/warning:")
    st.caption("Models the server serves")
    st.dataframe({"model": list(info.get("reported_models") or [])}, hide_index=True)


def try_prompt(generator: Any, chat: bool) -> None:
    """One greedy completion of a typed prompt (in process or through the server)."""
    st.subheader("Try a prompt")
    prompt = st.text_area("Prompt", key=state.widget_key("model", "prompt"),
                          value="Classify the sentiment of: 'I loved this film.'")
    mnt = st.number_input("Max new tokens", 1, 512, 48, key=state.widget_key("model", "mnt"))
    if st.button("Generate", icon=":material/play_arrow:"):
        try:
            with st.spinner("Generating…"):
                out = tryout.complete(generator, prompt, chat=chat, max_new_tokens=int(mnt))
            widgets.show_text(out, label="Model output (greedy)")
        except SelfGuideError as exc:
            widgets.show_error(exc)
