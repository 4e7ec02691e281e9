"""Model page: choose the base model and precision, and where synthesis generates (in this
process or through an OpenAI-compatible server); load it or connect once, try a prompt."""

from __future__ import annotations

import dataclasses

import streamlit as st

from selfguide.settings.fields import ModelConfig, field_help
from studio.app import frame, state, widgets
from studio.views import model as model_views

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
st.caption("Precision `auto` picks 4-bit on a GPU; on a CPU bf16 where it has native bf16 "
           "(AVX512-BF16 or AMX), else fp32. 4-bit (NF4) also runs on a CPU with "
           "bitsandbytes ≥ 0.49, but more slowly than on a GPU.")
if values.get("trust_remote_code"):
    st.warning("Trusting remote code runs Python shipped with the model. Only do this for "
               "models you trust.", icon=":material/warning:")

backend = model_views.backend_choice(saved)
server = model_views.server_fields(saved) if backend == "openai" else {}
cfg = widgets.build_config(ModelConfig, {**values, **server, "backend": backend,
                                         "model": (model_ref or "").strip() or "embedded"})
if cfg is not None:
    state.set_model_config(dataclasses.asdict(cfg))

model = model_views.load_or_connect(cfg, backend)
if model is not None:
    if backend == "openai":
        model_views.show_server(model.info)
    else:
        model_views.show_model(model.info)
    model_views.try_prompt(model.generator, cfg.chat)
elif cfg is not None and backend == "openai":
    st.info("Not connected yet. **Connect** checks that the server answers and serves this "
            "model; Synthesize jobs connect themselves.", icon=":material/info:")
elif cfg is not None:
    model_views.show_estimate(cfg)
    st.info("Not loaded in the studio yet. You can go straight to **Task**: jobs load the "
            "chosen model themselves.", icon=":material/info:")
st.page_link(frame.page_path("task"), label="Next: define the task",
             icon=":material/arrow_forward:")
