"""Model and weight safety, as behaviour: bad model paths are refused before transformers is
called, remote code and pickle weights never run (marker files stay absent), adapters load
only onto their own base, and generation parameters are validated and clamped.

RELIABILITY.md risks 9-13 and "Bad inputs" 7 and 11 (generation parameters). Uses the
tiny Llama from ``tests/conftest.py``; nothing comes from a hub.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from selfguide.errors import (
    AdapterMismatch,
    ConfigError,
    ModelError,
    ModelNotFound,
    RemoteCodeRefused,
    UnsafeWeights,
    UnsupportedModel,
)
from selfguide.models import loading as models
from selfguide.models import ref as model_ref
from selfguide.runs import store
from selfguide.settings.fields import ModelConfig, SamplingConfig, from_dict


class _Evil:
    """Unpickling this creates the marker file: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_bin(path: Path, marker: Path) -> None:
    import torch

    torch.save({"weight": _Evil(marker)}, path)


@pytest.fixture()
def spy(monkeypatch):
    """Record every call into transformers' loaders (and fail it)."""
    import transformers
    from transformers import PretrainedConfig, PreTrainedModel
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    calls: list[str] = []

    def fake(name):
        def _f(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"transformers {name} was called for a bad model path")
        return _f

    for owner, name in [(transformers.AutoModelForCausalLM, "AutoModelForCausalLM"),
                        (transformers.AutoTokenizer, "AutoTokenizer"),
                        (transformers.AutoConfig, "AutoConfig"),
                        (PreTrainedModel, "PreTrainedModel"),
                        (PretrainedConfig, "PretrainedConfig"),
                        (PreTrainedTokenizerBase, "PreTrainedTokenizerBase")]:
        monkeypatch.setattr(owner, "from_pretrained", fake(name))
    return calls


def _bad_model_refs(tmp_path: Path, tiny: Path) -> list[tuple[str, type, list | None]]:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a model")
    no_cfg = tmp_path / "no-config"
    no_cfg.mkdir()
    (no_cfg / "model.safetensors").write_bytes((tiny / "model.safetensors").read_bytes())
    bad_gguf = tmp_path / "fake.gguf"
    bad_gguf.write_bytes(b"NOPE" + b"\0" * 64)
    bad_cfg = tmp_path / "bad-config"
    bad_cfg.mkdir()
    (bad_cfg / "config.json").write_text("{not json")
    (bad_cfg / "model.safetensors").write_bytes(b"")
    return [
        ("/nonexistent/model", ModelNotFound, None),
        ("~/nope-selfguide-missing", ModelNotFound, None),
        ("   ", ModelNotFound, None),
        (str(a_file), ModelNotFound, None),
        (str(no_cfg), ModelNotFound, None),
        ("org/missing", ModelNotFound, None),  # hub id while HF_HUB_OFFLINE=1
        ("invalid repo id with spaces", ModelNotFound, None),
        ("../../../../../../etc", ModelNotFound, None),
        ("/etc", ModelNotFound, None),
        (str(bad_gguf), UnsupportedModel, None),
        (str(bad_cfg), UnsupportedModel, None),
        (str(tiny), ModelNotFound, [str(tmp_path / "models-root")]),  # outside allowed roots
    ]


def test_model_path_preflight_makes_no_transformers_call(tmp_path, tiny_model_dir, spy):
    cases = _bad_model_refs(tmp_path, tiny_model_dir)
    for ref, err, roots in cases:
        with pytest.raises(err) as info:
            model_ref.resolve_model(ref, roots=roots)
        assert "Hint:" in str(info.value) or ref.strip() in str(info.value) or err is \
            UnsupportedModel
        if ref.strip():
            with pytest.raises(ModelError):
                models.load_model(ModelConfig(model=ref, device="cpu"), roots=roots)
    assert spy == []
    with pytest.raises(ConfigError, match="model"):
        ModelConfig(model="")
    print(f"bad model paths tried: {len(cases) + 1}")


def test_pickle_only_model_refused(tmp_path, tiny_model_dir, spy):
    d = tmp_path / "pickled"
    d.mkdir()
    shutil.copy(tiny_model_dir / "config.json", d / "config.json")
    marker = tmp_path / "PWNED-model"
    _evil_bin(d / "pytorch_model.bin", marker)
    with pytest.raises(UnsafeWeights, match="pickle"):
        models.load_model(ModelConfig(model=str(d), device="cpu"))
    assert not marker.exists() and spy == []


def test_remote_code_refused(tmp_path, tiny_model_dir, spy):
    d = tmp_path / "remote"
    d.mkdir()
    marker = tmp_path / "PWNED-remote"
    cfg = {"model_type": "evilnet", "architectures": ["EvilForCausalLM"],
           "auto_map": {"AutoConfig": "configuration_evil.EvilConfig",
                        "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}}
    (d / "config.json").write_text(json.dumps(cfg))
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    (d / "configuration_evil.py").write_text(code)
    (d / "modeling_evil.py").write_text(code)
    shutil.copy(tiny_model_dir / "model.safetensors", d / "model.safetensors")
    with pytest.raises(RemoteCodeRefused, match="trust_remote_code"):
        models.load_model(ModelConfig(model=str(d), device="cpu"))
    assert not marker.exists() and spy == []


# --------------------------------------------------------------------------- adapters

@pytest.fixture()
def adapter_run(workspace, tiny_model_dir):
    """A run whose adapter was made on the tiny base (peft, safetensors, manifest)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from selfguide.runs.rundir import ADAPTER_MANIFEST

    run = store.resolve_run_dir("adapter-run", create=True)
    store.atomic_write_json(run / "config.json", {"model": {"model": str(tiny_model_dir),
                                                            "device": "cpu"}})
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), trust_remote_code=False,
                                                use_safetensors=True)
    torch.manual_seed(1)
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    adir = run / "train" / "adapter"
    peft.save_pretrained(str(adir), safe_serialization=True)
    store.atomic_write_json(adir / ADAPTER_MANIFEST, {
        "base_fingerprint": models.base_fingerprint(tiny_model_dir),
        "model": str(tiny_model_dir), "kind": "lora"})
    ids = torch.tensor([[2, 10, 11, 12, 13]])
    with torch.no_grad():
        logits = peft(input_ids=ids).logits
    return run, adir, ids, logits


def test_adapter_round_trip_exact_and_mismatch_refused(adapter_run, tmp_path, tiny_model_dir):
    import torch

    from selfguide.models import adapters
    run, adir, ids, want = adapter_run
    _, tuned = adapters.load_tuned(run, precision="fp32")
    with torch.no_grad():
        got = tuned(input_ids=ids).logits
    assert (got - want).abs().max().item() == 0.0

    other = tmp_path / "other-base"
    shutil.copytree(tiny_model_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["rms_norm_eps"] = 1e-5 if cfg.get("rms_norm_eps") != 1e-5 else 1e-6
    (other / "config.json").write_text(json.dumps(cfg))
    store.atomic_write_json(run / "config.json", {"model": {"model": str(other),
                                                            "device": "cpu"}})
    with pytest.raises(AdapterMismatch, match="different base"):
        adapters.load_tuned(run, precision="fp32")


@pytest.mark.parametrize("decoy", [False, True], ids=["bin-only", "bin-plus-decoy"])
def test_pickle_adapter_refused(adapter_run, tmp_path, decoy):
    from selfguide.models import adapters
    run, adir, _, _ = adapter_run
    marker = tmp_path / "PWNED-adapter"
    (adir / "adapter_model.safetensors").unlink()
    _evil_bin(adir / "adapter_model.bin", marker)
    if decoy:  # a stray safetensors file must not make PEFT fall back to the .bin
        (adir / "notes.safetensors").write_bytes(b"")
    with pytest.raises(ModelError):
        adapters.load_tuned(run, precision="fp32")
    assert not marker.exists()


# --------------------------------------------------------------------------- generation params

@pytest.mark.parametrize("field,value", [
    ("max_new_tokens", 0), ("max_new_tokens", -1), ("max_new_tokens", 10**9),
    ("max_new_tokens", 2.5), ("temperature", -0.1), ("temperature", 100.0),
    ("top_p", 0.0), ("top_p", 1.5), ("top_k", -1), ("max_time", 0), ("max_time", -3),
])
def test_sampling_config_rejects(field, value):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        from_dict(SamplingConfig, {field: value})


def test_sampling_config_rejects_strings_from_widgets():
    with pytest.raises(ConfigError, match="'max_new_tokens'"):
        from_dict(SamplingConfig, {"max_new_tokens": "lots"})
    assert from_dict(SamplingConfig, {"max_new_tokens": "8"}).max_new_tokens == 8


def test_temperature_zero_is_greedy_and_deterministic(tiny_model_dir):
    """temperature=0 means greedy (there is no separate do_sample switch to contradict it):
    two calls with different seeds give identical text."""
    from selfguide.backends.hf import HFGenerator

    lm = models.load_model(ModelConfig(model=str(tiny_model_dir), device="cpu",
                                       precision="fp32"))
    gen = HFGenerator.from_loaded(lm)
    a = gen.generate(["the cat sat on"], SamplingConfig(temperature=0.0, max_new_tokens=8,
                                                        seed=1), n=2)
    b = gen.generate(["the cat sat on"], SamplingConfig(temperature=0.0, max_new_tokens=8,
                                                        seed=99), n=1)
    assert SamplingConfig(temperature=0.0).greedy
    assert a[0][0] == a[0][1] == b[0][0]


def test_max_new_tokens_clamped_to_context_and_time(tiny_model_dir):
    from selfguide.backends.hf import HFGenerator

    lm = models.load_model(ModelConfig(model=str(tiny_model_dir), device="cpu",
                                       precision="fp32"))
    gen = HFGenerator.from_loaded(lm)
    ctx = gen.context_length
    prompt = " ".join(["the cat sat on the mat"] * 10)
    n_prompt = len(lm.tokenizer(prompt)["input_ids"])
    t0 = time.monotonic()
    out = gen.generate([prompt], SamplingConfig(temperature=0.0, max_new_tokens=32768),
                       chat=False)
    n_out = len(lm.tokenizer(out[0][0], add_special_tokens=False)["input_ids"])
    assert n_out <= ctx - n_prompt + 1
    too_long = " ".join(["hello world how are you today"] * 80)  # > context
    out = gen.generate([too_long], SamplingConfig(temperature=0.0, max_new_tokens=4,
                                                  max_time=0.5), chat=False)
    assert isinstance(out[0][0], str)
    assert time.monotonic() - t0 < 60
