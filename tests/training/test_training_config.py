"""Training config, builders, dataset checks and checkpoint selection (no model loaded)."""

from __future__ import annotations

import json

import pytest

from selfguide.errors import ConfigError, DatasetError
from selfguide.models import hardware
from selfguide.settings.fields import from_dict, replace
from selfguide.settings.training import PRESETS, TrainConfig
from selfguide.training import loop as train_loop
from selfguide.training import trainer as training


@pytest.mark.parametrize("bad", [
    {"method": "dpo"}, {"lora_r": 0}, {"lora_dropout": 1.0}, {"epochs": 0},
    {"learning_rate": 0}, {"batch_size": 0}, {"max_length": 8}, {"val_fraction": 0.6},
    {"max_steps": 0}, {"target_modules": " "}, {"long_rows": "ignore"},
])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        from_dict(TrainConfig, bad)


def test_presets_are_valid_and_precision_follows_method():
    for preset in PRESETS.values():
        from_dict(TrainConfig, preset)
    assert TrainConfig().method == "auto"  # issue 33: LoRA on fp32 on a CPU without bf16
    assert TrainConfig().resolve("cuda").method == "qlora"
    assert TrainConfig().resolve("mps").method == "lora"
    assert replace(TrainConfig(), method="qlora").model_precision == "4bit"
    auto = TrainConfig()
    assert auto.resolve("cpu").model_precision == (
        "4bit" if hardware.bf16_is_fast("cpu") else "fp32")
    assert auto.resolve("cuda").model_precision == "4bit"
    with pytest.raises(ConfigError):
        auto.model_precision  # noqa: B018 - must be resolved first
    assert replace(TrainConfig(), method="lora", precision="fp32").model_precision == "fp32"
    with pytest.raises(ConfigError):  # precision 'auto' must be resolved for lora too
        replace(TrainConfig(), method="lora").model_precision  # noqa: B018
    assert replace(TrainConfig(), method="full").model_precision == "fp32"
    assert replace(TrainConfig(), target_modules="q_proj, v_proj").target_module_list == [
        "q_proj", "v_proj"]


def test_build_lora_config():
    lc = train_loop.build_lora_config(TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.1))
    assert (lc.r, lc.lora_alpha, lc.lora_dropout) == (4, 8, 0.1)
    assert lc.target_modules == "all-linear" and lc.task_type == "CAUSAL_LM"


def test_build_training_args(tmp_path):
    cfg = TrainConfig(epochs=2, learning_rate=1e-3, batch_size=4, grad_accum=2, seed=3)
    args = train_loop.build_training_args(cfg, tmp_path, has_val=True)
    assert args.eval_strategy == "epoch" and args.save_strategy == "epoch"
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    assert (args.num_train_epochs, args.learning_rate, args.seed) == (2, 1e-3, 3)
    assert args.gradient_accumulation_steps == 2 and args.use_cpu
    assert args.report_to == [] or args.report_to in ("none", ["none"])
    no_val = train_loop.build_training_args(replace(cfg, save_strategy="steps", save_steps=5),
                                          tmp_path, has_val=False)
    assert no_val.eval_strategy == "no" and not no_val.load_best_model_at_end
    assert no_val.save_strategy == "steps" and no_val.save_steps == 5


def _rows(n, label=None, completion=None):
    return [{"id": str(i), "prompt": f"p{i}", "completion": completion or f"c{i}",
             "label": label if label else ("yes" if i % 2 else "no")} for i in range(n)]


def test_check_dataset():
    with pytest.raises(DatasetError, match="0 rows"):
        training.check_dataset([])
    with pytest.raises(DatasetError, match="identical"):
        training.check_dataset(_rows(5, completion="same"))
    with pytest.raises(DatasetError, match="label"):
        training.check_dataset(_rows(5, label="yes"), task_type="classification")
    with pytest.raises(DatasetError, match="prompt"):
        training.check_dataset([{"id": "x", "prompt": 1, "completion": "a"}])
    assert training.check_dataset(_rows(5, label="yes"), task_type="classification",
                                  force=True)["rows"] == 5
    assert training.check_dataset(_rows(4), task_type="classification")["labels"] == ["no", "yes"]


def test_split_validation_is_seeded_and_disjoint():
    rows = _rows(100)
    cfg = TrainConfig(val_fraction=0.1, min_val_rows=8)
    tr, va = training.split_validation(rows, cfg, seed=1)
    assert len(va) == 10 and len(tr) == 90
    assert {r["id"] for r in tr}.isdisjoint({r["id"] for r in va})
    assert training.split_validation(rows, cfg, seed=1)[1] == va
    assert training.split_validation(rows, cfg, seed=2)[1] != va
    assert training.split_validation(_rows(30), cfg, seed=1)[1] == []  # 3 < min_val_rows
    assert training.split_validation(rows, replace(cfg, val_fraction=0.0), seed=1)[1] == []


def _fake_checkpoint(d, step, *, state=True, weights=True, truncate=False):
    import torch
    from safetensors.torch import save_file

    p = d / f"checkpoint-{step}"
    p.mkdir(parents=True)
    if weights:
        save_file({"w": torch.arange(64, dtype=torch.float32)}, str(p / "adapter_model.safetensors"))
        if truncate:
            f = p / "adapter_model.safetensors"
            f.write_bytes(f.read_bytes()[:-40])
    (p / "optimizer.pt").write_bytes(b"x")
    if state:
        (p / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return p


def test_last_complete_checkpoint_numeric_and_skips_torn(tmp_path):
    assert training.last_complete_checkpoint(tmp_path / "missing") is None
    assert training.last_complete_checkpoint(tmp_path) is None
    _fake_checkpoint(tmp_path, 2)
    _fake_checkpoint(tmp_path, 9)
    assert training.last_complete_checkpoint(tmp_path).name == "checkpoint-9"
    _fake_checkpoint(tmp_path, 10)  # numeric order: 10 > 9 (lexically "10" < "9")
    assert training.last_complete_checkpoint(tmp_path).name == "checkpoint-10"
    _fake_checkpoint(tmp_path, 11, state=False)          # killed before trainer_state.json
    _fake_checkpoint(tmp_path, 12, truncate=True)        # killed mid safetensors write
    _fake_checkpoint(tmp_path, 13, weights=False)
    (tmp_path / "checkpoint-x").mkdir()
    assert training.last_complete_checkpoint(tmp_path).name == "checkpoint-10"
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text("{tor")
    assert training.last_complete_checkpoint(tmp_path).name == "checkpoint-9"


@pytest.mark.parametrize("native,expected", [("1", "bf16"), ("0", "fp32")])
def test_precision_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch, native, expected):
    monkeypatch.setenv("SELFGUIDE_CPU_BF16", native)
    lora = replace(TrainConfig(), method="lora").resolve("cpu")
    assert lora.precision == expected and lora.model_precision == expected
    assert replace(TrainConfig(), method="lora", precision="bf16").resolve("cpu").precision \
        == "bf16"  # an explicit choice is kept


def test_auto_takes_a_4bit_base_when_only_that_fits(monkeypatch):
    """Off CUDA, method auto is LoRA on a dense base, unless that base would not fit in the
    memory available while a 4-bit one would (a 7B model on a 16 GiB laptop)."""
    from selfguide.training import fit

    layer = [(f"model.layers.{i}.{n}", 4096, 4096) for i in range(32)
             for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
    dims = fit.ModelDims(n_params=7_000_000_000, layers=32, hidden=4096, heads=32,
                         vocab=32000, context=4096, linears=tuple(layer))
    auto, lora = TrainConfig(), replace(TrainConfig(), method="lora")
    monkeypatch.setenv("SELFGUIDE_CPU_BF16", "0")  # a laptop CPU: the dense base is fp32
    monkeypatch.setenv("SELFGUIDE_MEMORY_BYTES", str(64 * 2**30))
    assert fit.resolve_method(auto, dims, "cpu").method == "lora"
    monkeypatch.setenv("SELFGUIDE_MEMORY_BYTES", str(16 * 2**30))
    assert fit.resolve_method(auto, dims, "cpu").model_precision == "4bit"
    assert fit.resolve_method(lora, dims, "cpu").method == "lora"  # asked for: kept
    monkeypatch.setenv("SELFGUIDE_MEMORY_BYTES", str(2**30))  # nothing fits: the check says so
    assert fit.resolve_method(auto, dims, "cpu").method == "lora"
    assert fit.resolve_method(auto, None, "cpu").method == "lora"  # a hub id: nothing to measure


@pytest.mark.parametrize("native, method, precision", [("1", "qlora", "4bit"),
                                                       ("0", "lora", "fp32")])
def test_auto_on_a_cpu_follows_native_bf16(monkeypatch, native, method, precision):
    """Issue 33: on a CPU without native bf16 LoRA on an fp32 base trains faster than QLoRA
    (bench/README, session 21); with native bf16 QLoRA stays the default."""
    monkeypatch.setenv("SELFGUIDE_CPU_BF16", native)
    cfg = TrainConfig().resolve("cpu")
    assert (cfg.method, cfg.model_precision) == (method, precision)
