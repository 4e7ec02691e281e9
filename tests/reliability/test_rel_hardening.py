"""Issue 14 (hardening): each reported traceback, clobbered path, late check and stray
folder as a test that failed before its fix. Runs in-process through ``cli.main`` (a
traceback would fail the test) and never loads a real model except where named."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfguide import cli, jobs
from selfguide.errors import ResourceError
from selfguide.jobs import state as job_state
from selfguide.runs import store

REPO = Path(__file__).resolve().parents[2]
TASK = {"name": "sent", "instruction": "Is the review positive or negative?",
        "task_type": "classification", "labels": ["positive", "negative"],
        "examples": [{"input": "great film", "output": "positive"},
                     {"input": "boring plot", "output": "negative"},
                     {"input": "lovely cast", "output": "positive"}],
        "test": [{"input": "fun story", "output": "positive"},
                 {"input": "dull story", "output": "negative"}]}
SENTINEL = b"precious bytes\n"


def _main(argv, capsys) -> tuple[int, str]:
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return rc, out.err + out.out


@pytest.fixture()
def run_with_data(workspace, tmp_path):
    """A run with a task and a 2-row dataset (no model needed until train/merge)."""
    run = store.resolve_run_dir("r1", create=True)
    store.atomic_write_json(run / "task.json", TASK)
    rows = [{"id": f"r{i}", "prompt": "p", "completion": c, "input": "i", "output": c,
             "label": c} for i, c in enumerate(("positive", "negative"))]
    store.atomic_write_text(run / "dataset" / "train.jsonl",
                            "".join(json.dumps(r) + "\n" for r in rows))
    return run


# --------------------------------------------------------------------------- 1. output paths

def _targets(tmp_path: Path) -> dict[str, Path]:
    real = tmp_path / "real.txt"
    real.write_bytes(SENTINEL)
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    full = tmp_path / "nonempty"
    full.mkdir()
    (full / "keep.txt").write_bytes(SENTINEL)
    return {"file": real, "symlink": link, "fifo": fifo, "dir": full,
            "devfull": Path("/dev/full")}


def _untouched(t: dict[str, Path]) -> None:
    assert t["file"].read_bytes() == SENTINEL
    assert t["symlink"].is_symlink() and os.readlink(t["symlink"]) == str(t["file"])
    import stat

    assert stat.S_ISFIFO(os.lstat(t["fifo"]).st_mode)
    assert (t["dir"] / "keep.txt").read_bytes() == SENTINEL
    assert sorted(p.name for p in t["dir"].iterdir()) == ["keep.txt"]
    if os.path.exists("/dev/full"):
        assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


@pytest.mark.parametrize("fmt", ["jsonl", "alpaca", "hf-dataset"])
def test_export_never_clobbers(run_with_data, tmp_path, capsys, fmt):
    t = _targets(tmp_path)
    for name, path in t.items():
        if name == "devfull" and not path.exists():
            continue
        rc, err = _main(["export", "--run", "r1", "--format", fmt, "--output", path], capsys)
        assert rc == 2, (name, err)
        rc, err = _main(["export", "--run", "r1", "--format", fmt, "--output", path,
                         "--force"], capsys)
        # --force replaces a regular file for file formats, nothing else
        assert rc == (0 if name == "file" and fmt != "hf-dataset" else 2), (name, err)
        if rc == 0:
            t["file"].write_bytes(SENTINEL)
    _untouched(t)
    new = tmp_path / "new-out"
    assert _main(["export", "--run", "r1", "--format", fmt, "--output", new], capsys)[0] == 0
    assert new.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_merge_out_never_clobbers(run_with_data, tmp_path, capsys):
    t = _targets(tmp_path)
    for name, path in t.items():
        if name == "devfull" and not path.exists():
            continue
        rc, err = _main(["merge", "--run", "r1", "--out", path], capsys)
        assert rc == 2 and ("not empty" in err or "Refusing" in err or "is a file" in err), \
            (name, err)
    _untouched(t)


# --------------------------------------------------------------------------- 2. bounds, memory

@pytest.mark.parametrize("argv, field", [
    (["--lora-r", "100000"], "lora_r"), (["--lora-r", "0"], "lora_r"),
    (["--batch-size", "100000"], "batch_size"), (["--epochs", "inf"], "epochs"),
    (["--epochs", "nan"], "epochs"), (["--max-length", "99999999"], "max_length"),
    (["--seed", "99999999999999999999999"], "seed"), (["--target-modules", ","],
                                                      "target_modules"),
])
def test_train_bounds_refused_before_anything(run_with_data, capsys, argv, field):
    rc, err = _main(["train", "--run", "r1", *argv], capsys)
    assert rc == 2 and f"'{field}'" in err
    assert "train" not in (store.read_manifest(run_with_data).get("stages") or {})


@pytest.mark.parametrize("argv", [["--seed", "99999999999999999999999"], ["--seed", "-1"],
                                  ["-n", "100000"], ["--batch-size", "0"],
                                  ["--top-k", "1e30"], ["--max-time", "inf"]])
def test_generate_bounds(capsys, monkeypatch, argv):
    from selfguide import backends

    monkeypatch.setattr(backends, "get_generator", _no_model)
    rc, _ = _main(["generate", "-p", "hi", *argv], capsys)
    assert rc == 2


def _no_model(*a, **k):
    raise AssertionError("a model was loaded")


def test_memory_preflight_refuses_before_loading(run_with_data, tiny_model_dir, capsys,
                                                 monkeypatch):
    from selfguide.models import loading as models
    from selfguide.models.memory import MEMORY_ENV
    from selfguide.settings.training import TrainConfig
    from selfguide.training import fit as trainfit

    store.atomic_write_json(run_with_data / "config.json",
                            {"model": {"model": str(tiny_model_dir), "device": "cpu"}})
    monkeypatch.setattr(models, "load_model", _no_model)
    monkeypatch.setenv(MEMORY_ENV, str(2 * 2**30))
    rc, err = _main(["train", "--run", "r1", "--lora-r", "1024", "--batch-size", "1024",
                     "--max-length", "32768", "--method", "lora"], capsys)
    assert rc == 2 and "needs about" in err and "GiB" in err and "available" in err
    assert "train" not in (store.read_manifest(run_with_data).get("stages") or {})
    # the embedded model's figures: rank 100000 (the report) would need hundreds of GiB
    dims = trainfit.ModelDims(n_params=134_515_008, layers=30, hidden=576, heads=9,
                              vocab=49152, context=8192,
                              linears=tuple((f"model.layers.{i}.{n}", a, b)
                                            for i in range(30) for n, a, b in (
                                                ("self_attn.q_proj", 576, 576),
                                                ("self_attn.k_proj", 576, 192),
                                                ("self_attn.v_proj", 576, 192),
                                                ("self_attn.o_proj", 576, 576),
                                                ("mlp.gate_proj", 576, 1536),
                                                ("mlp.up_proj", 576, 1536),
                                                ("mlp.down_proj", 1536, 576))))
    import dataclasses

    big = dataclasses.replace(TrainConfig(method="lora"), lora_r=1024)
    assert trainfit.estimate_peak_bytes(dims, big, 512) > 4 * 2**30
    monkeypatch.setenv(MEMORY_ENV, str(23 * 2**30))
    with pytest.raises(ResourceError):
        trainfit.check_memory(dims, dataclasses.replace(big, batch_size=64), 8192)
    small = TrainConfig(method="lora")
    assert trainfit.check_memory(dims, small, 512) < 8 * 2**30  # the default fits
    assert trainfit.pick_max_length(dims, small, 700) == (700, "longest row")
    monkeypatch.setenv(MEMORY_ENV, str(3 * 2**30))
    length, why = trainfit.pick_max_length(dims, small, 8000)
    assert length < 8000 and why == "memory budget"


def test_target_modules_that_match_nothing(run_with_data, tiny_model_dir, capsys):
    store.atomic_write_json(run_with_data / "config.json",
                            {"model": {"model": str(tiny_model_dir), "device": "cpu"}})
    rc, err = _main(["train", "--run", "r1", "--target-modules", "nonexistent_proj",
                     "--method", "lora", "--precision", "fp32", "--max-steps", "1"], capsys)
    assert rc == 2 and "matches no layer" in err and "q_proj" in err


# --------------------------------------------------------------------------- 3-4. weights

def _model_dir(tmp_path: Path, tiny: Path, name: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    for f in tiny.iterdir():
        if f.name != "model.safetensors":
            (d / f.name).write_bytes(f.read_bytes())
    return d


def test_index_pointing_at_pickle_is_refused(tmp_path, tiny_model_dir, capsys, monkeypatch):
    import pickle

    marker = tmp_path / "PICKLE_RAN"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    d = _model_dir(tmp_path, tiny_model_dir, "indexed")
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(Boom()))
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "pytorch_model.bin"}}))
    rc, err = _main(["generate", "-p", "hi", "--model", d, "--device", "cpu"], capsys)
    assert rc == 2 and "not a safetensors file" in err and not marker.exists()
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"x": "../../etc/passwd.safetensors"}}))
    assert _main(["generate", "-p", "hi", "--model", d], capsys)[0] == 2


def test_corrupt_weights_and_gguf_are_errors(tmp_path, tiny_model_dir, capsys, run_with_data):
    d = _model_dir(tmp_path, tiny_model_dir, "random")
    (d / "model.safetensors").write_bytes(os.urandom(4096))
    rc, err = _main(["generate", "-p", "hi", "--model", d, "--device", "cpu"], capsys)
    assert rc == 2 and "safetensors" in err
    # valid header length, tensor beyond the end (truncated)
    (d / "model.safetensors").write_bytes(
        (tiny_model_dir / "model.safetensors").read_bytes()[:2000])
    assert _main(["generate", "-p", "hi", "--model", d], capsys)[0] == 2
    g = tmp_path / "trunc.gguf"
    g.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 5, 2) + b"\x05\x00")
    rc, err = _main(["generate", "-p", "hi", "--model", g], capsys)
    assert rc == 2 and "GGUF" in err
    adir = run_with_data / "train" / "adapter"
    adir.mkdir(parents=True)
    (adir / "selfguide_adapter.json").write_text('{"kind": "lora"}')
    (adir / "adapter_model.safetensors").write_bytes(os.urandom(512))
    rc, err = _main(["merge", "--run", "r1", "--out", tmp_path / "merged"], capsys)
    assert rc == 2 and "adapter" in err and not (tmp_path / "merged").exists()


# --------------------------------------------------------------------------- 4. misc tracebacks

def test_prompts_file_dir_device_missing(capsys, monkeypatch, tmp_path):
    from selfguide import backends

    monkeypatch.setattr(backends, "get_generator", _no_model)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in ("/etc", "/dev/zero", fifo, tmp_path / "missing.txt"):
        rc, err = _main(["generate", "--prompts-file", path], capsys)
        assert rc == 2 and "Prompts file" in err


def test_locks_in_a_readonly_workspace_are_storage_errors(run_with_data, capsys, monkeypatch):
    import filelock

    def deny(self, *a, **k):
        raise PermissionError(13, "Permission denied", self.lock_file)

    monkeypatch.setattr(filelock.FileLock, "acquire", deny)
    for argv in (["eval", "--run", "r1", "--limit", "1"], ["filter", "--run", "r1"]):
        rc, err = _main(argv, capsys)
        assert rc == 2, err
    with pytest.raises(Exception) as info:
        store.set_stage(run_with_data, "eval", "running")
    assert type(info.value).__name__ == "StorageError" and "manifest.json.lock" in str(
        info.value) and info.value.reason == "readonly"
    with pytest.raises(Exception) as info, jobs.worker(run_with_data, "synthesize"):
        pass
    assert type(info.value).__name__ == "StorageError" and "start.lock" in str(info.value)


# --------------------------------------------------------------------------- 5. stage guards

@pytest.fixture()
def live_synthesis(run_with_data):
    """A synthesize job whose worker is a live process (a sleeping child)."""
    import psutil

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    jdir = jobs.job_dir(run_with_data, "synthesize")
    jdir.mkdir(parents=True)
    job_state._write_status(jdir, {"state": "running", "pid": child.pid, "heartbeat": time.time(),
                              "create_time": psutil.Process(child.pid).create_time(),
                              "heartbeat_interval": 60})
    yield child
    child.kill()
    child.wait()


def test_filter_and_train_refuse_while_synthesis_runs(run_with_data, live_synthesis, capsys):
    before = (run_with_data / "dataset" / "train.jsonl").read_bytes()
    for argv in (["filter", "--run", "r1"], ["train", "--run", "r1"],
                 ["export", "--run", "r1"]):
        rc, err = _main(argv, capsys)
        assert rc == 2 and "synthesize job" in err and "is running" in err, err
    assert (run_with_data / "dataset" / "train.jsonl").read_bytes() == before
    assert not (store.read_manifest(run_with_data).get("stages") or {})
    live_synthesis.kill()
    live_synthesis.wait()
    jobs.check_inputs_idle(run_with_data, "filter")  # a dead worker blocks nothing


def test_filter_with_no_candidates_fails_and_is_not_done(run_with_data, capsys):
    from selfguide.methods.selfguide import pipeline as P
    from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
    from selfguide.settings.fields import ModelConfig
    from selfguide.task.spec import TaskSpec

    P.prepare_run(run_with_data, TaskSpec.from_dict(TASK), SynthesisConfig(), FilterConfig(),
                  ModelConfig())
    before = (run_with_data / "dataset" / "train.jsonl").read_bytes()
    rc, err = _main(["filter", "--run", "r1"], capsys)
    assert rc == 2 and "no candidates" in err
    assert (run_with_data / "dataset" / "train.jsonl").read_bytes() == before
    assert "filter" not in store.read_manifest(run_with_data)["stages"]


# --------------------------------------------------------------------------- 6, 8, 9. early checks

def test_run_validates_eval_options_before_synthesis(workspace, capsys, monkeypatch):
    from selfguide import backends

    monkeypatch.setattr(backends, "get_generator", _no_model)
    t0 = time.monotonic()
    for extra in (["--limit", "-1"], ["--test", "/nonexistent"]):
        rc, err = _main(["run", REPO / "examples" / "sentiment.json", *extra], capsys)
        assert rc == 2, err
    assert time.monotonic() - t0 < 30
    assert store.list_runs() == []


def test_failed_commands_leave_no_run_folder(workspace, tmp_path, capsys):
    task = tmp_path / "t.json"
    task.write_text(json.dumps(TASK))
    rc, _ = _main(["synthesize", task, "--run", "x1", "--model", tmp_path / "nope"], capsys)
    assert rc == 2
    bad = tmp_path / "seeds.jsonl"
    bad.write_text("not json\n")
    rc, _ = _main(["self-instruct", "--run", "x2", "--seed-tasks", bad], capsys)
    assert rc == 2
    rc, _ = _main(["self-instruct", "--run", "x3", "--seed-tasks", "/etc"], capsys)
    assert rc == 2
    assert store.list_runs() == [] and not list((workspace / "runs").glob("*")) \
        if (workspace / "runs").exists() else True


def test_rows_that_cannot_fit_are_refused_before_synthesis(workspace, tmp_path, capsys,
                                                          tiny_model_dir, monkeypatch):
    """Item 9: long demos (every row carries instruction + demos) against the model's
    context, found before any generation; the run folder is not created."""
    from selfguide import backends
    from selfguide.settings.fields import ModelConfig
    from selfguide.settings.training import TrainConfig
    from selfguide.task.spec import TaskSpec
    from selfguide.training.fit import check_rows_fit

    monkeypatch.setattr(backends, "get_generator", _no_model)
    long = dict(TASK, examples=[{"input": " ".join(["the cat sat on the mat"] * 20),
                                 "output": lab} for lab in ("positive", "negative",
                                                            "positive")])
    task = tmp_path / "long.json"
    task.write_text(json.dumps(long))
    rc, err = _main(["synthesize", task, "--run", "long", "--model", tiny_model_dir,
                     "--device", "cpu"], capsys)
    assert rc == 2 and "context of 256 tokens" in err and "3 demos" in err
    assert store.list_runs() == []
    short = check_rows_fit(TaskSpec.from_dict(TASK), ModelConfig(model=str(tiny_model_dir),
                                                                 device="cpu"))
    assert 0 < short.row_tokens <= short.max_length <= 256 and short.note is None
    with pytest.raises(Exception, match="more than max_length=16"):
        check_rows_fit(TaskSpec.from_dict(TASK), ModelConfig(model=str(tiny_model_dir),
                                                             device="cpu"),
                       TrainConfig(max_length=16))


# --------------------------------------------------------------------------- 10. smaller

def test_runs_shows_interrupted_after_kill9(run_with_data, capsys):
    store.set_stage(run_with_data, "synthesize", "running")
    jdir = jobs.job_dir(run_with_data, "synthesize")
    jdir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job_state._write_status(jdir, {"state": "running", "pid": dead.pid, "heartbeat": time.time()})
    rc, out = _main(["runs", "--json"], capsys)
    assert rc == 0 and json.loads(out)[0]["stages"]["synthesize"] == "interrupted"


def test_eval_empty_test_file_names_it(run_with_data, tmp_path, capsys):
    for body in ("", "input,output\n"):
        empty = tmp_path / "EMPTY.csv"
        empty.write_text(body)
        rc, err = _main(["eval", "--run", "r1", "--test", empty], capsys)
        assert rc == 2 and "EMPTY.csv has no examples" in err and "Pass --test" not in err
    assert "eval" not in (store.read_manifest(run_with_data).get("stages") or {})


@pytest.mark.parametrize("body, hint", [("input;output\na;positive\nb;negative\n", "semicolons"),
                                        ("a,positive\nb,negative\n", "read as the header")])
def test_csv_errors_name_file_and_delimiter(tmp_path, capsys, body, hint):
    f = tmp_path / "rows.csv"
    f.write_text(body)
    rc, err = _main(["synthesize", f, "--run", "c1"], capsys)
    assert rc == 2 and "rows.csv" in err and hint in err


def test_sigint_works_even_if_inherited_as_ignored(monkeypatch, capsys):
    import selfguide.commands.runs as runs_cmd

    def slow(args):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        return 0

    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        monkeypatch.setattr(runs_cmd, "run", slow)
        t0 = time.monotonic()
        assert cli.main(["runs"]) == 130
        assert time.monotonic() - t0 < 4
    finally:
        signal.signal(signal.SIGINT, old)


def test_torn_line_resumes_with_identical_text(tmp_path):
    """A prompt lost to a torn line is regenerated in its original batch position, so its
    text equals the uninterrupted run's (backends sample per batch position)."""
    import zlib

    from selfguide.methods.context import StageContext
    from selfguide.methods.selfguide import pipeline as P
    from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
    from selfguide.runs.rundir import RunDir
    from selfguide.task.spec import TaskSpec

    class PositionalBackend:
        def count_tokens(self, text):
            return len(text.split())

        def generate(self, prompts, sampling, n=1, **kw):
            return [[f"the {zlib.crc32(f'{sampling.seed}:{j}:{p}'.encode()) % 997} film"]
                    for j, p in enumerate(prompts)]

    task, cfg = TaskSpec.from_dict(TASK), SynthesisConfig(rounds=2, prompts_per_round=4)
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
    ctx = StageContext(PositionalBackend(), stream=None)
    full = P.generate_inputs(a, task, cfg, FilterConfig(), ctx)
    data = RunDir(a).inputs_file.read_bytes()
    RunDir(b).inputs_file.write_bytes(data[:data.rstrip(b"\n").rfind(b"\n") + 1] + b'{"id": "r00')
    resumed = P.generate_inputs(b, task, cfg, FilterConfig(), ctx)
    assert [r["input"] for r in resumed] == [r["input"] for r in full]
