"""kill -9 in the middle of real stage jobs, then resume: nothing lost, nothing duplicated,
and the result equals an uninterrupted run.

RELIABILITY.md risks 18/19 and "Bad inputs" 9a/9b/10. Synthesis runs the real pipeline in
``tests/reliability/synthworker.py`` (slow scripted backend, real ``jobs.worker``); training
runs the real ``selfguide train`` CLI on the tiny Llama, both started with ``jobs.start``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from selfguide import jobs
from selfguide.runs import store

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Default 2 s heartbeat: a loaded 2-core box can starve a shorter one into a (transient)
# "interrupted" reading.
ENV = {"PYTHONPATH": f"{HERE}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1"}


def wait_for(pred, timeout=60.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _kill9(run_dir: Path, stage: str) -> None:
    st = jobs.status(run_dir, stage)
    assert st.state not in jobs.FINAL, f"the job was already {st.state} at the kill point"
    os.killpg(st.pgid, signal.SIGKILL)
    wait_for(lambda: jobs.status(run_dir, stage).state == "interrupted", timeout=10)


# --------------------------------------------------------------------------- synthesis

def _synth(run_dir: Path, delay: float):
    return jobs.start(run_dir, "synthesize", [str(run_dir), str(delay)], module="synthworker",
                      env=ENV)


def _finished(run_dir: Path, stage: str, timeout: float = 120) -> jobs.JobStatus:
    def final():  # a stale heartbeat under load is transient; a dead pid is not
        s = jobs.status(run_dir, stage)
        return s if s.state in jobs.FINAL or s.reason == "died" else None

    st = wait_for(final, timeout=timeout, interval=0.2)
    assert st.state == "finished", (st.error, st.log_tail[-2000:])
    return st


def test_kill9_during_synthesis_resumes_without_loss_or_duplicates(workspace):
    ref = store.resolve_run_dir("synth-ref", create=True)
    _synth(ref, 0.0)
    _finished(ref, "synthesize")

    assert _lines(ref / "annotations.jsonl") >= 8 and _lines(ref / "inputs.jsonl") == 20

    def while_running(run_dir, cond):
        def pred():
            if cond():
                return True
            if jobs.status(run_dir, "synthesize").state in jobs.FINAL:
                raise AssertionError("the job ended before the kill point")
            return False
        return pred

    run = store.resolve_run_dir("synth-kill", create=True)
    _synth(run, 0.25)
    # stage 1, after round 1
    wait_for(while_running(run, lambda: 5 <= _lines(run / "inputs.jsonl") < 20))
    _kill9(run, "synthesize")
    n_inputs_at_kill = _lines(run / "inputs.jsonl")
    _synth(run, 0.25)
    # stage 2, after the probe (4 rows) and the first annotation batch, before the last
    wait_for(while_running(run, lambda: 8 <= _lines(run / "annotations.jsonl") < 20))
    _kill9(run, "synthesize")
    _synth(run, 0.0)
    _finished(run, "synthesize")

    want = pd.read_parquet(ref / "candidates.parquet")
    got = pd.read_parquet(run / "candidates.parquet")
    assert len(got) == len(want) > 0
    assert got["id"].is_unique
    assert sorted(got["id"]) == sorted(want["id"])
    for name in ("inputs.jsonl", "annotations.jsonl"):
        ids = [r["id"] for r in store.read_jsonl(run / name)]
        assert len(ids) == len(set(ids)), f"duplicate ids in {name}"
    assert store.read_jsonl(run / "dataset" / "train.jsonl") == \
        store.read_jsonl(ref / "dataset" / "train.jsonl")
    print(f"synthesis: 2 kills (at {n_inputs_at_kill} inputs, then in stage 2), "
          f"{len(got)} rows == {len(want)} uninterrupted, 0 duplicates")


# --------------------------------------------------------------------------- training

# 40 steps, a checkpoint every 2: a tiny model runs 8 steps in well under a second, and on
# a busy machine the poll below once missed every checkpoint between the first and the last
TRAIN_STEPS = 40
TRAIN_ARGS = ["--method", "lora", "--precision", "fp32", "--max-steps", str(TRAIN_STEPS),
              "--save-strategy", "steps", "--save-steps", "2", "--save-total-limit", "10",
              "--batch-size", "2", "--val-fraction", "0", "--select-best", "false",
              "--lora-r", "4", "--target-modules", "q_proj,v_proj", "--seed", "3"]
WORDS = "the cat sat on mat a dog ran in park hello world how are you today".split()


def _train_run(name: str, tiny: Path) -> Path:
    run = store.resolve_run_dir(name, create=True)
    r = random.Random(0)
    recs = [{"id": f"r{i}", "prompt": " ".join(r.choice(WORDS) for _ in range(6)),
             "completion": " ".join(r.choice(WORDS) for _ in range(3))} for i in range(24)]
    store.atomic_write_text(run / "dataset" / "train.jsonl",
                            "".join(json.dumps(x) + "\n" for x in recs))
    store.atomic_write_json(run / "config.json", {"model": {"model": str(tiny),
                                                            "device": "cpu"}})
    # a whole task (training reads and checks it before it writes anything, issue 38)
    store.atomic_write_json(run / "task.json", {
        "name": name, "instruction": "Continue the words.", "task_type": "generation",
        "demos": [{"input": "the cat", "output": "sat on mat"},
                  {"input": "a dog", "output": "ran in park"},
                  {"input": "hello world", "output": "how are you"}]})
    return run


def _train(run: Path):
    return jobs.start(run, "train", ["train", "--run", run.name, *TRAIN_ARGS], env=ENV)


def _tensors(adapter: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


@pytest.mark.slow
def test_kill9_during_training_resumes_to_identical_lora(workspace, tiny_model_dir):
    import torch

    from selfguide.training.trainer import last_complete_checkpoint

    ref, run = _train_run("train-ref", tiny_model_dir), _train_run("train-kill", tiny_model_dir)
    _train(ref)  # runs alongside the interrupted one (1 thread each)
    _train(run)
    ckpts = run / "train" / "checkpoints"
    def between_checkpoints():
        c = last_complete_checkpoint(ckpts)
        if c is None and jobs.status(run, "train").state in jobs.FINAL:
            raise AssertionError("training ended before its first checkpoint")
        return c is not None and c.name != f"checkpoint-{TRAIN_STEPS}"

    wait_for(between_checkpoints, timeout=240, interval=0.1)
    _kill9(run, "train")
    last = last_complete_checkpoint(ckpts)
    step = int(last.name.split("-")[1])
    assert step < TRAIN_STEPS
    # kill -9 *during a save*: a newer checkpoint dir with torn weights and no trainer state
    torn = ckpts / f"checkpoint-{step + 1}"
    if torn.exists():
        shutil.rmtree(torn)
    shutil.copytree(last, torn)
    (torn / "trainer_state.json").unlink()
    w = torn / "adapter_model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    assert last_complete_checkpoint(ckpts) == last

    _finished(ref, "train", timeout=300)
    _train(run)
    _finished(run, "train", timeout=300)
    for r in (ref, run):  # no hub kernel fetched through peft's bitsandbytes import (libs.py)
        log = (r / "jobs" / "train" / "log.txt").read_text()
        assert "kernels-community" not in log and "publisher trust" not in log, log[-2000:]
    metrics = store.read_json(run / "train" / "metrics.json")
    assert metrics["resumed_from"] == last.name and metrics["steps"] == TRAIN_STEPS
    a, b = _tensors(ref / "train" / "adapter"), _tensors(run / "train" / "adapter")
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        assert torch.equal(a[k], b[k]), k
    print(f"training: killed after {last.name}, torn checkpoint-{step + 1} skipped, "
          f"{len(a)} LoRA tensors bit-identical")
