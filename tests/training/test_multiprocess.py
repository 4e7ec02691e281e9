"""``selfguide train`` in two processes: ``accelerate launch --multi_gpu`` on a CPU-only
environment is torchrun with gloo, on 127.0.0.1 (``GLOO_SOCKET_IFNAME=lo``) and a free
port. Rank 0 must be the one writer (job, events, adapter, metrics), the loss curve must
be the single-process one for the same global batch, and resume must work."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sgtest.training import make_run, tensors

from selfguide.errors import ConfigError
from selfguide.runs.events import EventLog, read_events
from selfguide.runs.rundir import RunDir
from selfguide.settings.training import TrainConfig
from selfguide.training import dist as train_dist
from selfguide.training import trainer as training

REPO = Path(__file__).resolve().parents[2]
STEPS = 6  # 24 rows, a global batch of 4: one epoch
COMMON = ["--method", "lora", "--precision", "fp32", "--grad-accum", "1",
          "--learning-rate", "5e-3", "--val-fraction", "0", "--max-steps", str(STEPS),
          "--save-strategy", "steps", "--save-steps", "2", "--save-total-limit", "5"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(run: str, *extra: str) -> subprocess.CompletedProcess:
    """``accelerate launch`` two CPU processes of ``python -m selfguide train``."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "GLOO_SOCKET_IFNAME": "lo",
           "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_USE_FSDP"):
        env.pop(k, None)
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
            "--main_process_port", str(_free_port()),
            "-m", "selfguide", "train", "--run", run, "--batch-size", "2", *COMMON, *extra]
    return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=150)


@pytest.mark.slow
def test_two_processes_match_one_and_resume(workspace, tiny_model_dir):
    pytest.importorskip("accelerate")
    ref = make_run(workspace, tiny_model_dir, "one")
    cfg = TrainConfig(method="lora", precision="fp32", grad_accum=1, learning_rate=5e-3,
                      val_fraction=0.0, max_steps=STEPS, batch_size=4,
                      save_strategy="steps", save_steps=2, save_total_limit=5)
    training.train(ref, cfg, events=EventLog(ref / "events.jsonl"), stream=open(os.devnull, "w"))
    ref_losses = [e for e in read_events(ref / "events.jsonl") if e["type"] == "loss"]

    run = make_run(workspace, tiny_model_dir, "two")
    res = _launch("two")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("trained ") == 1  # one summary line: rank 0's

    rd = RunDir(run)
    evs = read_events(rd.path / "jobs" / "train" / "events.jsonl")
    kinds = [e["type"] for e in evs]
    # one writer: one job start and end, one train_begin, no duplicated step
    assert kinds.count("train_begin") == 1 and kinds.count("train_end") == 1
    assert [e["state"] for e in evs if e["type"] == "status"] == ["running", "finished"]
    losses = [e for e in evs if e["type"] == "loss"]
    assert [e["step"] for e in losses] == [e["step"] for e in ref_losses] == list(
        range(1, STEPS + 1))
    # the same global batch (2 rows x 2 ranks = 4 rows) gives the same curve: the loss is
    # not divided by the number of ranks
    for got, want in zip(losses, ref_losses, strict=True):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-3)
    assert max(e["done"] for e in evs if e["type"] == "progress") == STEPS
    assert all(e["eta"] is not None for e in losses)
    begin = next(e for e in evs if e["type"] == "train_begin")
    assert begin["max_steps"] == STEPS

    status = json.loads((rd.path / "jobs" / "train" / "status.json").read_text())
    assert status["state"] == "finished"
    assert status["pid"] == next(e["pid"] for e in evs if e["type"] == "status")
    metrics = json.loads(rd.train_metrics_file.read_text())
    assert metrics["steps"] == STEPS and metrics["resumed_from"] is None
    ck = rd.checkpoints_dir / f"checkpoint-{STEPS}"
    assert (ck / "rng_state_0.pth").is_file() and (ck / "rng_state_1.pth").is_file()
    assert not list(rd.path.rglob(".*.tmp")), "a rank left a temporary file"

    from peft import PeftModel

    from selfguide.models import adapters
    _, tuned = adapters.load_tuned(rd.path, precision="fp32")
    assert isinstance(tuned, PeftModel)
    first = tensors(rd.adapter_dir / "adapter_model.safetensors")

    # A kill while rank 1 wrote its RNG state: the last checkpoint is torn for 2 ranks.
    (ck / "rng_state_1.pth").unlink()
    assert training.last_complete_checkpoint(rd.checkpoints_dir).name == ck.name
    assert training.last_complete_checkpoint(rd.checkpoints_dir, world_size=2).name == \
        f"checkpoint-{STEPS - 2}"
    res = _launch("two")
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads(rd.train_metrics_file.read_text())
    assert metrics["resumed_from"] == f"checkpoint-{STEPS - 2}" and metrics["steps"] == STEPS
    again = tensors(rd.adapter_dir / "adapter_model.safetensors")
    assert again.keys() == first.keys()
    for k in first:
        assert again[k].allclose(first[k], atol=1e-6), k


# --------------------------------------------------------------------------- launch env

def _env(monkeypatch, **env: str) -> None:
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
              "ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


def test_rank_and_strategy_from_the_launcher_environment(monkeypatch):
    _env(monkeypatch)
    assert (train_dist.world_size(), train_dist.rank(), train_dist.is_main()) == (1, 0, True)
    assert train_dist.strategy() == "single" and train_dist.broadcast("x") == "x"
    _env(monkeypatch, WORLD_SIZE="4", RANK="3", LOCAL_RANK="1", LOCAL_WORLD_SIZE="2")
    assert (train_dist.world_size(), train_dist.rank(), train_dist.local_rank()) == (4, 3, 1)
    assert train_dist.local_world_size() == 2 and not train_dist.is_main()
    assert train_dist.strategy() == "ddp"
    _env(monkeypatch, WORLD_SIZE="2", ACCELERATE_USE_FSDP="true")
    assert train_dist.strategy() == "fsdp"
    _env(monkeypatch, WORLD_SIZE="two")
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        train_dist.world_size()


def test_unsupported_launches_are_refused_before_loading(monkeypatch):
    qlora = TrainConfig(method="qlora")
    _env(monkeypatch)
    train_dist.check_supported(qlora, "cuda")  # one process: nothing to refuse
    _env(monkeypatch, WORLD_SIZE="2", ACCELERATE_USE_FSDP="true")
    with pytest.raises(ConfigError, match="QLoRA under FSDP"):
        train_dist.check_supported(qlora, "cuda")
    with pytest.raises(ConfigError, match="FSDP training needs CUDA"):
        train_dist.check_supported(TrainConfig(method="lora"), "cpu")
    _env(monkeypatch, WORLD_SIZE="2", ACCELERATE_USE_DEEPSPEED="true")
    with pytest.raises(ConfigError, match="DeepSpeed"):
        train_dist.check_supported(TrainConfig(method="lora"), "cpu")
    _env(monkeypatch, WORLD_SIZE="2")
    with pytest.raises(ConfigError, match="MPS"):
        train_dist.check_supported(TrainConfig(method="lora"), "mps")
    train_dist.check_supported(TrainConfig(method="lora"), "cpu")  # DDP on the CPU: fine


def test_cli_rank_other_than_zero_is_not_the_job_worker(workspace, tiny_model_dir,
                                                        monkeypatch):
    """A rank other than 0 trains without claiming the job or writing events."""
    from selfguide.commands import train as train_cmd

    run = make_run(workspace, tiny_model_dir, "rank1")
    _env(monkeypatch, RANK="1")  # WORLD_SIZE unset: no process group, the body runs alone
    called = {}
    monkeypatch.setattr(training, "train", lambda run_dir, cfg, **kw: called.update(kw) or None)
    parser = argparse.ArgumentParser()
    train_cmd.add_arguments(parser)
    assert train_cmd.run(parser.parse_args(["--run", "rank1", "--method", "lora"])) == 0
    assert called == {}  # no events log handed over
    assert not (run / "jobs" / "train").exists()
