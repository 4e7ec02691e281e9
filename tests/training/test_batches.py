"""Merged accumulation batches (same losses as accumulating) and the token-based ETA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfguide.runs import events as ev
from selfguide.runs import store
from selfguide.runs.events import EventLog, Progress, read_events, work_eta
from selfguide.runs.rundir import RunDir
from selfguide.settings.training import TrainConfig
from selfguide.task.prompts import task_prompt
from selfguide.training import data as train_data
from selfguide.training import loop as train_loop
from selfguide.training import prefix as train_prefix
from selfguide.training import trainer as training


def test_plan_batches_merges_accumulation_within_the_token_budget():
    plan = train_loop.plan_batches
    assert plan(2, 4, 180, max_tokens=1536) == (8, 1)   # 8 x 180 = 1440 tokens fit
    assert plan(2, 4, 300, max_tokens=1536) == (4, 2)   # 8 x 300 does not, 4 x 300 does
    assert plan(2, 4, 800, max_tokens=1536) == (2, 4)   # nothing to merge
    assert plan(3, 3, 10, max_tokens=1536) == (9, 1)
    assert plan(2, 6, 200, max_tokens=1536) == (6, 2)   # a divisor of grad_accum only
    assert plan(2, 4, 10, merge=False) == (2, 4)
    for b, a, n in [(1, 7, 50), (2, 4, 333), (5, 1, 10_000), (4, 12, 64)]:
        rows, accum = plan(b, a, n)
        assert rows * accum == b * a and rows >= b  # rows per optimizer step unchanged


def test_plan_batches_counts_a_shared_prefix_once():
    plan = train_loop.plan_batches
    assert plan(2, 4, 336, max_tokens=1536) == (4, 2)             # 8 x 336 does not fit
    assert plan(2, 4, 336, max_tokens=1536, shared=287) == (8, 1)  # 287 + 8 x 49 does
    assert plan(2, 4, 336, max_tokens=1536, shared=10_000) == (8, 1)  # capped: a row remains


def test_shared_prefix_len_stops_at_the_first_difference_and_the_first_loss_position():
    import torch

    n = train_prefix.MIN_SHARED
    a, b = list(range(10, 10 + n + 5)), list(range(10, 10 + n + 2)) + [99]
    batch = train_data.PadCollator(pad_id=0)([
        {"input_ids": a, "labels": [-100] * (n + 3) + a[-2:], "attention_mask": [1] * len(a)},
        {"input_ids": b, "labels": [-100] * (n + 2) + [99], "attention_mask": [1] * len(b)}])
    keep = torch.zeros_like(batch["labels"], dtype=torch.bool)
    keep[:, :-1] = batch["labels"][:, 1:] != -100
    # rows agree on n + 2 tokens; row 2's first label (index n + 2) is predicted at n + 1
    assert train_prefix.shared_prefix_len(batch["input_ids"], batch["attention_mask"],
                                          keep) == n + 1
    none = torch.zeros_like(keep)
    assert train_prefix.shared_prefix_len(batch["input_ids"], batch["attention_mask"],
                                          none) == n + 2   # no loss position: the difference
    one = {k: v[:1] for k, v in batch.items()}
    assert train_prefix.shared_prefix_len(one["input_ids"], one["attention_mask"],
                                          keep[:1]) == 0  # one row: nothing to share
    short = torch.tensor([[1] * n + [5], [1] * n + [6]])
    assert train_prefix.shared_prefix_len(short, None, torch.zeros_like(short).bool()) == n
    assert train_prefix.shared_prefix_len(short[:, 2:], None,
                                          torch.zeros_like(short[:, 2:]).bool()) == 0  # < MIN
    rows = [{"input_ids": a, "labels": [-100] * (n + 3) + a[-2:]},
            {"input_ids": b, "labels": [-100] * (n + 2) + [99]}]
    assert train_prefix.rows_shared_prefix(rows) == n + 1
    assert train_prefix.rows_shared_prefix(rows[:1]) == 0


def test_shared_prefix_forward_gives_the_full_forwards_loss_and_gradients(tiny_model_dir):
    """LoRA on the tiny Llama: the prefix run once and repeated gives the loss and every
    gradient of the full batch forward, and projects the same positions."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(model, train_loop.build_lora_config(TrainConfig(method="lora")))
    for p in model.parameters():  # the base too: its gradients go through the shared prefix
        p.requires_grad_(True)
    g = torch.Generator().manual_seed(0)
    prefix = torch.randint(5, 60, (40,), generator=g).tolist()
    rows = []
    for k, (tail, answer) in enumerate([(7, 3), (3, 2), (11, 4)]):
        ids = prefix + torch.randint(5, 60, (tail + answer,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * (len(ids) - answer) + ids[-answer:],
                     "attention_mask": [1] * len(ids)})
    batch = train_data.PadCollator(pad_id=1)(rows)
    results = {}
    for share in (False, True):
        model.zero_grad()
        stats: dict = {}
        loss, out = train_loop.completion_loss(model, batch, num_items_in_batch=12,
                                               share_prefix=share, stats=stats)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[share] = (loss.detach(), out.logits.detach(), grads, stats)
    (l0, lg0, g0, s0), (l1, lg1, g1, s1) = results[False], results[True]
    assert s0 == {"forwards": 1, "shared": 0, "saved_tokens": 0}
    assert s1 == {"forwards": 1, "shared": 1, "saved_tokens": 2 * 40}
    assert lg1.shape == lg0.shape == (9, lg0.shape[-1])  # 3 + 2 + 4 answer positions
    assert torch.allclose(l1, l0, atol=1e-5)
    assert torch.allclose(lg1, lg0, atol=1e-4)
    assert g0.keys() == g1.keys() and len(g0) > 10
    for n, grad in g0.items():
        assert torch.allclose(g1[n], grad, atol=1e-5, rtol=1e-4), n


def _run(ws: Path, model_dir: Path, name: str, n: int = 16) -> Path:
    """A run with rows of different lengths (so a merged batch pads more than two rows)."""
    run = store.resolve_run_dir(name, ws, create=True)
    store.atomic_write_json(run / "config.json", {"model": {"model": str(model_dir)}})
    store.atomic_write_json(run / "task.json", {
        "name": "sent", "instruction": "is this movie positive or negative",
        "demos": [{"input": "this movie was great", "output": "positive"},
                  {"input": "this film was bad", "output": "negative"}],
        "task_type": "classification", "labels": ["positive", "negative"],
        "metric": "exact_match", "test": []})
    task = RunDir(run).read_task(required=True)
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        inp = " ".join(["this movie was great and fun" if pos else "this film was bad"]
                       * (1 + i % 4))
        lab = "positive" if pos else "negative"
        rows.append({"id": f"r{i}", "prompt": task_prompt(task, inp), "completion": lab,
                     "input": inp, "output": lab, "label": lab})
    store.atomic_write_text(run / "dataset" / "train.jsonl",
                            "".join(json.dumps(r) + "\n" for r in rows))
    return run


@pytest.mark.slow
def test_merged_batches_train_like_accumulation(workspace, tiny_model_dir, monkeypatch):
    """2 x 4 accumulated and one merged batch of 8: the same rows per step, the same
    per-step losses and final adapter (up to float noise)."""
    plans, real_plan = [], train_loop.plan_batches
    monkeypatch.setattr(train_loop, "plan_batches",  # records what the real one decides
                        lambda *a, **k: plans.append(real_plan(*a, **k)) or plans[-1])
    metrics = _train_alike(workspace, tiny_model_dir, "merge_batches", share_prefix=False)
    assert [m["steps"] for m in metrics.values()] == [4, 4]
    assert plans == [(2, 4), (8, 1)]


def _train_alike(ws: Path, model_dir: Path, flag: str, **fixed) -> dict:
    """Train the same rows with ``flag`` off and on (2 x 4 rows per step, 2 epochs); assert
    the same per-step losses and final adapter up to float noise; the two runs' metrics."""
    from safetensors.torch import load_file

    losses, weights, metrics = {}, {}, {}
    for on in (False, True):
        run = _run(ws, model_dir, f"{flag[:5]}{int(on)}")
        cfg = TrainConfig(method="lora", precision="fp32", batch_size=2, grad_accum=4,
                          epochs=2, learning_rate=5e-3, val_fraction=0.0,
                          save_strategy="steps", save_steps=10**6, **{flag: on}, **fixed)
        metrics[on] = training.train(run, cfg, events=EventLog(run / "events.jsonl")).metrics
        losses[on] = [e["loss"] for e in read_events(run / "events.jsonl", ("loss",))]
        weights[on] = load_file(str(run / "train" / "adapter" / "adapter_model.safetensors"))
    assert len(losses[True]) == len(losses[False]) == 4
    assert losses[True] == pytest.approx(losses[False], rel=1e-4, abs=1e-5)
    for k, w in weights[False].items():
        assert (weights[True][k] - w).abs().max() <= 1e-4 + 1e-3 * w.abs().max(), k
    return metrics


@pytest.mark.slow
def test_shared_prefix_trains_like_full_rows(workspace, tiny_model_dir):
    """A whole training run with and without sharing the rows' prompt prefix: the same
    per-step losses and adapter; the shared run did not recompute the prefix."""
    metrics = _train_alike(workspace, tiny_model_dir, "share_prefix")
    stats = {on: m.get("prefix_shared") for on, m in metrics.items()}
    assert stats[False] is None
    assert stats[True]["forwards"] == stats[True]["shared"] == 4  # 8 x 1 merged, 4 steps
    assert stats[True]["saved_tokens"] > 0


def test_work_eta_follows_tokens_not_steps():
    """A short first step (100 of 800 tokens, 1 s) foretells the 7 s left; counting steps
    would say 3 s. Synthetic timings: 0.01 s per token."""
    tokens = [100, 300, 300, 100]
    assert work_eta(100, sum(tokens), 1.0) == pytest.approx(7.0)
    assert work_eta(400, sum(tokens), 4.0) == pytest.approx(4.0)
    assert work_eta(800, sum(tokens), 8.0) == 0.0
    assert work_eta(0, 800, 0.0) is None and work_eta(10, 800, 0.0) is None


def test_planned_work_counts_epochs_steps_and_validation():
    total, per_eval = train_loop.planned_work([100] * 10, 0, total_steps=6, steps_per_epoch=2)
    assert total == pytest.approx(3000) and per_eval == 0  # 3 epochs of 1,000 tokens
    total, per_eval = train_loop.planned_work([100] * 10, 200, total_steps=4,
                                              steps_per_epoch=2)
    assert per_eval == pytest.approx(train_loop.EVAL_WORK * 200)
    assert total == pytest.approx(2000 + 2 * per_eval)  # two epochs, validated after each
    total, _ = train_loop.planned_work([100] * 10, 0, total_steps=3, steps_per_epoch=2)
    assert total == pytest.approx(1500)  # max_steps: steps x the mean tokens of a step


def test_progress_eta_uses_work_from_the_restarted_clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(ev.time, "monotonic", lambda: now[0])
    p = Progress("train", 4, unit="steps", stream=None, work_total=800)
    now[0] += 30.0  # one-off set-up before the first step: not part of the rate
    p.restart_clock()
    now[0] += 1.0
    p.update(1, tokens=100, work=100)
    assert p.eta == pytest.approx(7.0)
    now[0] += 3.0
    p.update(1, tokens=300, work=300)
    assert p.eta == pytest.approx(4.0)
    p.update(2, tokens=400, work=350)  # the plan was a little off: done is done
    assert p.eta == 0.0
    plain = Progress("x", 4, stream=None)  # without work_total: units, as before
    now[0] += 2.0
    plain.update(1)
    assert plain.eta == pytest.approx(6.0)


@pytest.mark.slow
def test_warm_up_pass_leaves_training_unchanged(workspace, tiny_model_dir, monkeypatch):
    """The warm-up forward/backward before step 1 (so the first step's rate, and the ETA
    shown then, is not the one-off cost of a first pass) leaves no trace: with dropout on,
    a run with it has the same losses and adapter as one without; no gradient, RNG draw or
    mode change remains after it."""
    import torch
    from safetensors.torch import load_file

    real = train_loop.warm_up
    seen: dict = {}

    def checked(trainer, **kw):
        model = trainer.model
        model.eval()
        params = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        rng = torch.get_rng_state()
        seen["s"] = real(trainer, **kw)
        seen["clean"] = (all(p.grad is None for p in model.parameters())
                         and torch.equal(torch.get_rng_state(), rng) and not model.training
                         and all(torch.equal(p, params[n]) for n, p in model.named_parameters()
                                 if p.requires_grad))
        return seen["s"]

    losses, weights = {}, {}
    for on in (False, True):
        monkeypatch.setattr(train_loop, "warm_up", checked if on else (lambda t, **kw: 0.0))
        run = _run(workspace, tiny_model_dir, f"warm{int(on)}")
        cfg = TrainConfig(method="lora", precision="fp32", batch_size=2, grad_accum=2, epochs=1,
                          learning_rate=5e-3, val_fraction=0.0, lora_dropout=0.3,
                          save_strategy="steps", save_steps=10**6)
        training.train(run, cfg, events=EventLog(run / "events.jsonl"))
        losses[on] = [e["loss"] for e in read_events(run / "events.jsonl", ("loss",))]
        weights[on] = load_file(str(run / "train" / "adapter" / "adapter_model.safetensors"))
    assert seen["s"] > 0 and seen["clean"]
    assert len(losses[True]) == 4 and losses[True] == losses[False]
    assert all(torch.equal(weights[True][k], w) for k, w in weights[False].items())
    logs = [e["message"] for e in read_events(workspace / "runs" / "warm1" / "events.jsonl",
                                              ("log",))]
    assert any(m.startswith("warm-up pass in") for m in logs)
