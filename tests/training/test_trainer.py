"""Training on the tiny Llama: masking, LoRA/QLoRA/full runs, adapter files, events, resume."""

from __future__ import annotations

import json

import pytest
from sgtest.training import LABELS, checkpointing_cfg, make_run, tensors  # noqa: F401

from selfguide.errors import DatasetError
from selfguide.runs import store
from selfguide.runs.events import EventLog, read_events
from selfguide.settings.training import TrainConfig
from selfguide.training import data as train_data
from selfguide.training import loop as train_loop
from selfguide.training import trainer as training


def test_masking_prompt_tokens_get_minus_100(tiny_model_dir):
    from transformers import AutoTokenizer

    from selfguide.backends.rendering import encode_prompt

    tok = AutoTokenizer.from_pretrained(tiny_model_dir, trust_remote_code=False)
    rec = {"id": "a", "prompt": "is this movie great", "completion": "positive"}
    for chat in (False, True):
        feats = train_data.build_features(tok, [rec], chat=chat, max_length=64)
        row = feats.rows[0]
        p_ids = encode_prompt(tok, rec["prompt"], chat)
        n_p = len(p_ids)
        assert row["input_ids"][:n_p] == p_ids  # exactly the prompt evaluation renders
        assert row["labels"][:n_p] == [-100] * n_p
        assert row["labels"][n_p:] == row["input_ids"][n_p:]
        assert tok.decode(row["input_ids"][n_p:-1]).strip() == "positive"
        assert row["input_ids"][-1] == tok.eos_token_id
    # long rows: dropped and reported, or the prompt's start is cut, or an error
    long = {"id": "long", "prompt": " ".join(["the cat sat on the mat"] * 20),
            "completion": "positive"}
    feats = train_data.build_features(tok, [rec, long], chat=False, max_length=32)
    assert len(feats.rows) == 1 and feats.long_rows[0]["id"] == "long"
    cut = train_data.build_features(tok, [long], chat=False, max_length=32, long_rows="truncate")
    assert len(cut.rows[0]["input_ids"]) == 32 and cut.rows[0]["labels"][-2] != -100
    with pytest.raises(DatasetError, match="max_length"):
        train_data.build_features(tok, [long], chat=False, max_length=32, long_rows="error")


def test_collator_pads_labels_with_minus_100():
    batch = train_data.PadCollator(pad_id=1)([
        {"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "attention_mask": [1, 1, 1]},
        {"input_ids": [5], "labels": [5], "attention_mask": [1]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 1, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [5, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_completion_loss_matches_the_models_own_loss(tiny_model_dir):
    """Projecting only the completion positions gives the full-logits loss and gradients."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert train_loop.supports_logits_to_keep(model)
    batch = train_data.PadCollator(pad_id=0)([
        {"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, -100, 8, 9, 10],
         "attention_mask": [1] * 6},
        {"input_ids": [11, 12, 13, 14], "labels": [-100, -100, 13, 14],
         "attention_mask": [1] * 4}])
    ref = model(**batch).loss
    ref.backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    loss, out = train_loop.completion_loss(model, batch)
    assert out.logits.shape[0] == 5  # 3 + 2 answer positions, not 2 x 6 rows of logits
    assert torch.allclose(loss, ref, atol=1e-6)
    loss.backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, ref_grads[n], atol=1e-6), n
    # gradient accumulation: the sum over the items of every accumulated batch
    summed, _ = train_loop.completion_loss(model, batch, num_items_in_batch=10)
    assert torch.allclose(summed, ref * 5 / 10, atol=1e-6)


@pytest.mark.slow
def test_train_lora_tiny(workspace, tiny_model_dir):
    run = make_run(workspace, tiny_model_dir, n=40)
    events = EventLog(run / "events.jsonl")
    cfg = TrainConfig(grad_accum=1, method="lora", precision="fp32", epochs=2, batch_size=4,
                      learning_rate=5e-3, val_fraction=0.2, min_val_rows=4)
    res = training.train(run, cfg, events=events)
    adir = run / "train" / "adapter"
    assert (adir / "adapter_model.safetensors").is_file()
    assert not list(adir.glob("*.bin"))
    man = json.loads((adir / "selfguide_adapter.json").read_text())
    assert man["model"] == str(tiny_model_dir) and man["chat"] is True
    assert man["base_fingerprint"] and man["kind"] == "lora"
    # LoRA B matrices start at zero: training must have moved them
    w = tensors(adir / "adapter_model.safetensors")
    b = [v for k, v in w.items() if "lora_B" in k]
    assert b and all(float(v.abs().sum()) > 0 for v in b)
    m = res.metrics
    assert m["rows"] == 32 and m["val_rows"] == 8 and m["steps"] == 16
    assert len(m["eval_losses"]) == 2 and m["best_checkpoint"].startswith("checkpoint-")
    evs = read_events(run / "events.jsonl")
    losses = [e for e in evs if e["type"] == "loss"]
    assert len(losses) == 16
    assert {"step", "epoch", "loss", "lr", "tokens_per_s", "elapsed", "eta"} <= set(losses[0])
    assert any(e["type"] == "progress" and e["done"] == 16 for e in evs)
    assert [e for e in evs if e["type"] == "eval"]
    assert json.loads((run / "train" / "metrics.json").read_text())["steps"] == 16


@pytest.mark.slow
def test_resume_after_kill_uses_last_complete_checkpoint(workspace, tiny_model_dir):
    cfg = checkpointing_cfg(max_steps=6)
    ref = make_run(workspace, tiny_model_dir, "ref")
    training.train(ref, cfg)
    expected = tensors(ref / "train" / "adapter" / "adapter_model.safetensors")

    run = make_run(workspace, tiny_model_dir, "killed")
    training.train(run, cfg)
    ck = run / "train" / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["checkpoint-2", "checkpoint-4",
                                                    "checkpoint-6"]
    # Simulate kill -9: the last checkpoint torn mid-save, the one before lost its state.
    f = ck / "checkpoint-6" / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    (ck / "checkpoint-4" / "trainer_state.json").unlink()
    assert training.last_complete_checkpoint(ck).name == "checkpoint-2"
    res = training.train(run, cfg)
    assert res.metrics["resumed_from"] == "checkpoint-2"
    got = tensors(run / "train" / "adapter" / "adapter_model.safetensors")
    assert got.keys() == expected.keys()
    for k in expected:  # bit-identical to the uninterrupted run on CPU
        assert (got[k] == expected[k]).all(), k


def test_new_dataset_does_not_resume_old_checkpoints(workspace, tiny_model_dir):
    """After a re-filter or a new synthesis, training must start over, not resume (and so
    silently return) the model trained on the old data."""
    cfg = checkpointing_cfg(max_steps=4)
    run = make_run(workspace, tiny_model_dir, "refiltered")
    training.train(run, cfg)
    old = tensors(run / "train" / "adapter" / "adapter_model.safetensors")
    rows = (run / "dataset" / "train.jsonl").read_text().splitlines()
    store.atomic_write_text(run / "dataset" / "train.jsonl", "\n".join(rows[: len(rows) // 2]) + "\n")
    res = training.train(run, cfg)
    assert res.metrics["resumed_from"] is None and res.metrics["steps"] == 4
    new = tensors(run / "train" / "adapter" / "adapter_model.safetensors")
    assert any(not (new[k] == old[k]).all() for k in old), "the adapter must be retrained"
    # Same data and settings again: the finished checkpoints are reused (resume works).
    again = training.train(run, cfg)
    assert again.metrics["resumed_from"] == "checkpoint-4"


@pytest.mark.slow
def test_qlora_4bit_on_cpu(workspace, tiny_model_dir):
    run = make_run(workspace, tiny_model_dir)
    res = training.train(run, TrainConfig(grad_accum=1, method="qlora", max_steps=3, batch_size=4,
                                          val_fraction=0.0, learning_rate=5e-3))
    assert res.metrics["steps"] == 3
    man = json.loads((run / "train" / "adapter" / "selfguide_adapter.json").read_text())
    assert man["method"] == "qlora"
    w = tensors(run / "train" / "adapter" / "adapter_model.safetensors")
    assert any("lora_B" in k and float(v.abs().sum()) > 0 for k, v in w.items())


@pytest.mark.slow
def test_full_finetune_and_degenerate_dataset(workspace, tiny_model_dir):
    run = make_run(workspace, tiny_model_dir, "full")
    training.train(run, TrainConfig(grad_accum=1, method="full", max_steps=2, batch_size=4,
                                    val_fraction=0.0))
    adir = run / "train" / "adapter"
    assert (adir / "model.safetensors").is_file() and (adir / "tokenizer.json").is_file()
    assert json.loads((adir / "selfguide_adapter.json").read_text())["kind"] == "full"

    bad = make_run(workspace, tiny_model_dir, "bad")
    rows = store.read_jsonl(bad / "dataset" / "train.jsonl")
    for r in rows:
        r["completion"] = r["label"] = "positive"
    store.atomic_write_text(bad / "dataset" / "train.jsonl",
                            "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DatasetError):
        training.train(bad, TrainConfig(grad_accum=1, method="lora", max_steps=1))
    assert not (bad / "train" / "checkpoints").exists()  # refused before any training


class _PieceTokenizer:
    """Whole pieces from a vocabulary, else one id per character ("sports" is split,
    " sports" is one piece), like a BPE vocabulary where a label lacks its bare form."""

    VOCAB = (" sports", " politics", "politics", "positive", " positive", "yes", " yes")

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        ids, i = [], 0
        while i < len(text):
            piece = max((p for p in self.VOCAB if text.startswith(p, i)), key=len, default="")
            ids.append(self.VOCAB.index(piece) if piece else 1000 + ord(text[i]))
            i += len(piece) or 1
        return {"input_ids": ids}


def test_completion_prefix_space_only_when_labels_take_fewer_tokens():
    tok = _PieceTokenizer()
    rows = [{"completion": c, "label": c} for c in ("sports", "politics")]
    assert train_data.completion_prefix(tok, rows) == " "  # 6 + 1 tokens bare, 1 + 1 spaced
    # labels that are one piece bare too, generation rows, no rows: as written
    assert train_data.completion_prefix(tok, [{"completion": c, "label": c}
                                              for c in ("positive", "yes")]) == ""
    assert train_data.completion_prefix(tok, [{"completion": "sports politics"}]) == ""
    assert train_data.completion_prefix(tok, []) == ""


def test_build_features_writes_the_prefix_before_the_completion(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir, trust_remote_code=False)
    rec = {"id": "a", "prompt": "is this movie great", "completion": "positive"}
    bare = train_data.build_features(tok, [rec], chat=False, max_length=64).rows[0]
    spaced = train_data.build_features(tok, [rec], chat=False, max_length=64,
                                       prefix=" ").rows[0]
    c_ids = [i for i, lab in zip(spaced["input_ids"], spaced["labels"]) if lab != -100]
    assert c_ids[:-1] == tok(" positive", add_special_tokens=False)["input_ids"]
    assert spaced["labels"][:len(spaced["labels"]) - len(c_ids)] == \
        bare["labels"][:len(bare["labels"]) - len([x for x in bare["labels"] if x != -100])]
