"""The memory estimate before loading: parameters from headers, bytes per precision against
the free memory, a ``ResourceError`` before anything loads, a warning when close."""

from __future__ import annotations

import logging

import pytest

from selfguide.errors import ResourceError
from selfguide.models import convert as model_convert
from selfguide.models import loading as models
from selfguide.models import memory
from selfguide.settings.fields import ModelConfig


@pytest.fixture()
def no_load(monkeypatch):
    """transformers' loaders and the GGUF conversion fail the test if they are reached."""
    import transformers

    def spy(*args, **kwargs):
        raise AssertionError("loaded although the estimate says it does not fit")

    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        monkeypatch.setattr(cls, "from_pretrained", spy)
    monkeypatch.setattr(model_convert, "_convert_into", spy)


def test_parameters_from_the_safetensors_headers(tiny_model_dir):
    import math

    from safetensors import safe_open

    with safe_open(str(tiny_model_dir / "model.safetensors"), "pt") as fh:
        want = sum(math.prod(fh.get_slice(k).get_shape()) for k in fh.keys())  # noqa: SIM118
    assert memory.count_params(tiny_model_dir) == want > 0


def test_parameters_of_the_embedded_gguf_from_its_tensor_table():
    from selfguide.models.ref import embedded_gguf

    assert 130e6 < memory.count_params(embedded_gguf()) < 140e6


@pytest.mark.parametrize("precision,per_param", [("4bit", 0.6), ("8bit", 1.1), ("bf16", 2.0),
                                                 ("fp32", 4.0)])
def test_bytes_per_parameter_by_precision(precision, per_param):
    n = 1_000_000_000
    assert memory.need_bytes(n, precision) == int(n * per_param * 1.15 + memory.RUNTIME)


def test_too_large_is_refused_before_loading(tiny_model_dir, monkeypatch, no_load):
    monkeypatch.setenv(memory.MEMORY_ENV, "1e6")  # 1 MB free
    with pytest.raises(ResourceError) as err:
        models.load_model(ModelConfig(model=str(tiny_model_dir), precision="fp32",
                                      device="cpu"))
    msg = str(err.value)
    assert "too large" in msg and "at fp32" in msg and "0.0 GB available" in msg
    assert "smaller model" in err.value.hint and "--device" in err.value.hint
    assert "Precision 4bit or 8bit" in err.value.ui_hint
    with pytest.raises(ResourceError) as err:  # already at the smallest precision
        memory.check(memory.estimate(memory.count_params(tiny_model_dir), "4bit", "cpu"), "m")
    assert err.value.ui_hint.startswith("Choose a smaller model or another Device")


def test_the_hint_names_the_precision_that_fits(monkeypatch):
    monkeypatch.setenv(memory.MEMORY_ENV, "8e9")
    est = memory.estimate(7_000_000_000, "bf16", "cpu")  # 7B: 16.6 GB at bf16, 5.4 at 4bit
    assert est.verdict == "too_large" and est.summary().startswith("needs ~16.6 GB at bf16")
    with pytest.raises(ResourceError) as err:
        memory.check(est, "big-7b")
    assert "7.00B parameters" in str(err.value)
    assert err.value.hint.startswith("Choose precision 4bit (--precision 4bit")


def test_close_to_the_limit_warns_and_loads(tiny_model_dir, monkeypatch, caplog):
    n = memory.count_params(tiny_model_dir)
    need = memory.need_bytes(n, "fp32")
    monkeypatch.setenv(memory.MEMORY_ENV, str(int(need / 0.9)))
    with caplog.at_level(logging.WARNING, logger="selfguide.models.memory"):
        lm = models.load_model(ModelConfig(model=str(tiny_model_dir), precision="fp32",
                                           device="cpu"))
    assert lm.info.n_params > 0
    assert any("close to the limit" in r.getMessage() for r in caplog.records)


def test_available_memory_per_device(monkeypatch):
    import torch

    monkeypatch.delenv(memory.MEMORY_ENV, raising=False)
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 3 * 10**9)
    assert memory.available_bytes("cpu") == 3 * 10**9
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (5 * 10**9, 8 * 10**9))
    assert memory.available_bytes("cuda") == 5 * 10**9
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two ranks load at once on this node
    assert memory.available_bytes("cpu") == 3 * 10**9 // 2
    assert memory.available_bytes("cuda") == 5 * 10**9  # each rank has its own GPU
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    monkeypatch.setattr(memory, "_meminfo_available", lambda: None)
    assert memory.available_bytes("cpu") > 0  # psutil where there is no /proc/meminfo


def test_an_unconverted_gguf_counts_its_conversion(tmp_path, monkeypatch, no_load):
    monkeypatch.setenv("SELFGUIDE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(memory.MEMORY_ENV, "2e8")  # 0.2 GB: neither converting nor loading fits
    cfg = ModelConfig(model="embedded", precision="fp32", device="cpu")
    convert, load = models.memory_estimate(cfg)
    assert (convert.what, convert.precision, convert.device) == ("convert", "fp32", "cpu")
    assert load.what == "load" and load.verdict == "too_large"
    with pytest.raises(ResourceError, match="GGUF file, converted once before loading; that needs ~.* at fp32 to convert"):
        models.load_model(cfg)
    assert not model_convert.converted_dir(convert_src()).exists()


def convert_src():
    from selfguide.models.ref import embedded_gguf

    return embedded_gguf()


def test_a_hub_id_has_no_estimate(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from selfguide.models import ref as model_ref

    src = model_ref.ModelSource("hub", "org/model", None)
    assert models.memory_estimate(ModelConfig(model="org/model"), src=src, device="cpu") == []


def test_a_hub_id_in_the_local_cache_is_estimated_one_not_downloaded_is_not(
        tiny_model_dir, tmp_path, monkeypatch):
    """A hub id downloaded before is estimated from the cached snapshot's headers (no
    network: ``local_files_only``); one that is not in the cache has no estimate."""
    import shutil

    from huggingface_hub import constants

    cache = tmp_path / "hub"
    snap = cache / "models--someorg--tiny" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_model_dir, snap)
    (cache / "models--someorg--tiny" / "refs").mkdir()
    (cache / "models--someorg--tiny" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # the cache alone: no network
        monkeypatch.delenv(var, raising=False)               # call is made either way
    monkeypatch.chdir(tmp_path)  # "someorg/tiny" is not a local folder here
    est = models.memory_estimate(ModelConfig(model="someorg/tiny", precision="fp32",
                                             device="cpu"))
    assert [e.n_params for e in est] == [memory.count_params(tiny_model_dir)]
    assert models.memory_estimate(ModelConfig(model="someorg/absent", precision="fp32",
                                              device="cpu")) == []
