"""Model page: choose the base model and precision, load it once, try a prompt."""

from __future__ import annotations

import dataclasses

import streamlit as st

from selfguide import tryout
from selfguide.config import ModelConfig, field_help
from selfguide.errors import SelfGuideError
from studio import frame, resources, state, widgets

frame.ensure(__file__)  # a page started on its own runs inside the frame

st.title("Model")
st.caption("Step 1 of 6 · Pick the small model you want to turn into a task expert. "
           "Synthesis, training and evaluation jobs load it themselves; loading it here lets "
           "you try it and check it fits in memory.")
widgets.show_flash()

SOURCES = {
    "embedded": "Embedded SmolLM2-135M-Instruct (offline, ready to use)",
    "local": "Local Hugging Face folder",
    "gguf": "GGUF file",
    "hub": "Hugging Face hub id (needs the network)",
}

saved = state.model_config()
ref = saved.get("model", "embedded")
kind0 = "embedded" if ref == "embedded" else ("gguf" if ref.endswith(".gguf") else
                                              ("local" if ref.startswith(("/", ".", "~"))
                                               else "hub"))
kind = st.radio("Source", list(SOURCES), format_func=SOURCES.get,
                index=list(SOURCES).index(kind0), key=state.widget_key("model", "source"),
                help=field_help(ModelConfig, "model"))
if kind == "embedded":
    model_ref = "embedded"
else:
    placeholder = {"local": "/path/to/model-folder", "gguf": "/path/to/model.gguf",
                   "hub": "HuggingFaceTB/SmolLM2-360M-Instruct"}[kind]
    model_ref = st.text_input("Path or id", value="" if ref == "embedded" else ref,
                              placeholder=placeholder, key=state.widget_key("model", "ref"))

values = widgets.config_form(ModelConfig, "model", base=saved,
                             include=["precision", "device", "chat", "trust_remote_code"],
                             columns=4)
st.caption("Precision `auto` picks 4-bit on a GPU and bf16 on a CPU. 4-bit (NF4) also runs "
           "on a CPU with bitsandbytes ≥ 0.49, but more slowly than on a GPU.")
if values.get("trust_remote_code"):
    st.warning("Trusting remote code runs Python shipped with the model. Only do this for "
               "models you trust.", icon=":material/warning:")

cfg = widgets.build_config(ModelConfig, {**values, "model": (model_ref or "").strip()
                                         or "embedded"})
if cfg is not None:
    state.set_model_config(dataclasses.asdict(cfg))

load = st.button("Load model", type="primary", icon=":material/download:",
                 disabled=cfg is None)
model = None
if cfg is not None and (load or state.loaded_model()):
    loaded = state.loaded_model()
    same = loaded is not None and loaded["config"] == state.model_config()
    if load or same:
        try:
            model = resources.get_model(cfg)
            state.set_loaded_model(state.model_config(), model.info)
        except SelfGuideError as exc:
            widgets.show_error(exc)

if model is not None:
    info = model.info
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

    st.subheader("Try a prompt")
    prompt = st.text_area("Prompt", key=state.widget_key("model", "prompt"),
                          value="Classify the sentiment of: 'I loved this film.'")
    mnt = st.number_input("Max new tokens", 1, 512, 48, key=state.widget_key("model", "mnt"))
    if st.button("Generate", icon=":material/play_arrow:"):
        try:
            with st.spinner("Generating…"):
                out = tryout.complete(model.generator, prompt, chat=cfg.chat,
                                      max_new_tokens=int(mnt))
            widgets.show_text(out, label="Model output (greedy)")
        except SelfGuideError as exc:
            widgets.show_error(exc)
elif cfg is not None:
    st.info("Not loaded in the studio yet. You can go straight to **Task**: jobs load the "
            "chosen model themselves.", icon=":material/info:")
st.page_link(frame.page_path("task"), label="Next: define the task",
             icon=":material/arrow_forward:")
