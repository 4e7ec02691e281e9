"""Shared test fixtures: offline environment, loopback-only sockets, a tiny Llama model
built in code (never from a hub), and an isolated workspace per test."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest

# Offline, quiet, isolated: set before anything imports transformers.
_HF_HOME = tempfile.mkdtemp(prefix="sg-hf-home-")
os.environ.update({
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HOME": os.environ.get("SELFGUIDE_TEST_HF_HOME", _HF_HOME),
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
})

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "niv2-dev"

try:
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, deadline=None, max_examples=200)
    settings.register_profile("dev", deadline=None, max_examples=50)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")
except ImportError:  # pragma: no cover
    pass


# --------------------------------------------------------------------------- network guard

_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and self.family in (socket.AF_INET, socket.AF_INET6):
        if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
            raise OSError(f"Test tried to reach {host!r}: tests must stay on loopback.")
    return _real_connect(self, address)


socket.socket.connect = _guarded_connect


# --------------------------------------------------------------------------- tiny model

TINY_SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "positive negative neutral yes no entails",
    "input output answer question task label",
    "what is the best way to learn python",
    "this movie was great and fun",
    "this film was bad and boring",
    "hello world how are you today",
    "paraphrase the question with other words",
    "sentence premise hypothesis review text",
]


def _bpe_tokenizer(specials: list[str]):
    """A byte-level BPE (GPT-2 style, as GGUF's ``gpt2`` tokenizer) trained on the tiny
    sentences: ~400 tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TINY_SENTENCES * 3, trainer)
    return tok


def build_tiny_model(path: Path, *, chat_template: bool = True, bpe: bool = False) -> Path:
    """Save a ~100 KB Llama (2 layers, hidden 32) with a WordLevel tokenizer to ``path``
    (``bpe``: a byte-level BPE tokenizer instead, which GGUF can carry)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>"]
    words = sorted({w for s in TINY_SENTENCES for w in s.split()} | set(":.,?!'\"[]-0123456789"))
    vocab = {t: i for i, t in enumerate(specials + words)}
    if bpe:
        tok = _bpe_tokenizer(specials)
        vocab = tok.get_vocab()
    else:
        tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>")
    if chat_template:
        fast.chat_template = (
            "{% for m in messages %}{% if m['role'] == 'user' %}<|user|> {{ m['content'] }} "
            "{% else %}<|assistant|> {{ m['content'] }} </s> {% endif %}{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, bos_token_id=2, eos_token_id=3,
                      pad_token_id=1, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture(scope="session")
def tiny_bpe_model_dir(tmp_path_factory) -> Path:
    """The tiny Llama with a byte-level BPE tokenizer (exportable to GGUF)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama-bpe") / "model", bpe=True)


@pytest.fixture(scope="session")
def tiny_model_builder():
    """``build_tiny_model`` as a fixture (tests must not ``import conftest``: several exist)."""
    return build_tiny_model


@pytest.fixture()
def workspace(tmp_path, monkeypatch) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("SELFGUIDE_WORKSPACE", str(ws))
    return ws


@pytest.fixture(scope="session")
def niv2_dir() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"NIv2 dev tasks not found at {SHARED_DATA}")
    return SHARED_DATA


# --------------------------------------------------------------------------- plugins

PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture()
def toy_method(monkeypatch):
    """The toy method registered through ``$SELFGUIDE_METHODS`` (as a user's plugin would
    be), for this process and the jobs it starts; the registry is restored afterwards."""
    from selfguide import methods

    methods.all_methods()  # the built-in methods registered before the registry is saved
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(PLUGINS), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv(methods.PLUGINS_ENV, "toymethod")
    saved = dict(methods._REGISTRY)
    monkeypatch.setattr(methods, "_discovered", False)
    yield methods.get("toymethod")
    methods._REGISTRY.clear()
    methods._REGISTRY.update(saved)
    for name in [m for m in sys.modules if m == "toymethod" or m.startswith("toymethod.")]:
        del sys.modules[name]
