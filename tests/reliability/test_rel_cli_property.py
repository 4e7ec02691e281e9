"""Issue 14: a hypothesis property over the whole CLI. For every command, random and hostile
argument lists (numbers at and beyond every bound, paths to directories, devices, FIFOs,
symlinks and missing files, unicode, traversal) never produce a traceback, exit 0 or 2,
and never touch the files they were pointed at.

In-process through ``cli.main``; model loading is replaced by a ``ModelError`` (no model
is ever loaded), so each example takes milliseconds. Parsers are introspected, so a new
option or command is covered without editing this file.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfguide import cli
from selfguide.errors import ModelError
from selfguide.runs import store

NUMBERS = ["-1", "0", "1", "2", "16", "64", "1024", "1025", "32768", "32769", "2147483647",
           "2147483648", "-2147483649", "99999999999999999999999", "1e309", "-1e309", "1e30",
           "nan", "inf", "-inf", "0.5", "1.5", "-0.0", "0x10", "1_000", "", " ", "1e-320"]
TEXTS = ["", " ", "é", "中文", "\u200b", "\u202e", "a\nb", "../../etc", "/", "-", "--",
         "true", "false", "all-linear", ",", "q_proj,,v_proj", "x" * 300, "embedded"]


def _fixtures(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    real = root / "precious.txt"
    real.write_text("precious\n")
    link = root / "link.txt"
    link.symlink_to(real)
    dangling = root / "dangling.txt"
    dangling.symlink_to(root / "nowhere")
    fifo = root / "fifo"
    os.mkfifo(fifo)
    full = root / "nonempty"
    full.mkdir()
    (full / "keep.txt").write_text("keep\n")
    task = root / "task.json"
    task.write_text(json.dumps({
        "instruction": "Is it positive or negative?", "labels": ["positive", "negative"],
        "examples": [{"input": "great", "output": "positive"},
                     {"input": "awful", "output": "negative"}],
        "test": [{"input": "fine", "output": "positive"}]}))
    semi = root / "semi.csv"
    semi.write_text("input;output\na;b\n")
    return {"real": str(real), "link": str(link), "dangling": str(dangling),
            "fifo": str(fifo), "dir": str(full), "task": str(task), "semi": str(semi),
            "missing": str(root / "missing" / "x.json"), "new": str(root / "new-out")}


def _paths(fx: dict[str, str]) -> list[str]:
    devs = [d for d in ("/dev/null", "/dev/full", "/dev/zero") if os.path.exists(d)]
    return [*fx.values(), "/etc", "/", *devs, "~", "../../../etc/passwd"]


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _argv_strategy(fx: dict[str, str]):
    paths = _paths(fx)
    values = st.sampled_from(NUMBERS + TEXTS + paths + ["r1", "missing-run"]) | st.text(
        max_size=12)
    runs = st.sampled_from(["r1", "missing-run", "../x", "", "CON", "a" * 70, "r1\n"])

    def for_command(item):
        name, parser = item
        opts = [a for a in parser._actions if a.option_strings and a.dest != "help"]
        positionals = [a for a in parser._actions if not a.option_strings]

        def build(draw_opts, draw_pos):
            argv = [name]
            for pos, val in zip(positionals, draw_pos):
                argv.append(val)
            for act, val in draw_opts:
                if act.dest == "help":
                    continue
                flag = act.option_strings[-1]
                if act.nargs == 0:
                    argv.append(flag)
                elif act.dest == "run":
                    argv += [flag, val[1]]
                else:
                    argv += [flag, val[0]]
            return argv

        def option(act):  # choices are drawn from the choices half the time
            vals = st.sampled_from(list(act.choices)) | values if act.choices else values
            return st.tuples(st.just(act), st.tuples(vals, runs))

        opt_st = st.lists(st.sampled_from(opts).flatmap(option), max_size=5) if opts \
            else st.just([])
        pos_st = st.lists(st.sampled_from(paths) | runs, min_size=len(positionals),
                          max_size=len(positionals))
        # a required --run is usually given, so commands get past argparse
        return st.builds(build, opt_st, pos_st).flatmap(
            lambda argv: st.sampled_from([argv, argv + ["--run", "r1"]]
                                         if any(a.dest == "run" and a.required for a in opts)
                                         else [argv]))

    return st.sampled_from(sorted(_commands().items())).flatmap(for_command)


@pytest.fixture(scope="module")
def cli_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cliprop")
    fx = _fixtures(root / "targets")
    ws = root / "ws"
    run = ws / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "task.json").write_text(Path(fx["task"]).read_text())
    (run / "dataset").mkdir()
    (run / "dataset" / "train.jsonl").write_text(json.dumps(
        {"id": "a", "prompt": "p", "completion": "positive", "input": "i",
         "output": "positive"}) + "\n")
    return fx, ws


def _snapshot(fx: dict[str, str]) -> dict:
    out = {}
    for k in ("real", "link", "dangling", "fifo", "dir"):
        st_ = os.lstat(fx[k])
        out[k] = (stat.S_IFMT(st_.st_mode), os.readlink(fx[k]) if k in ("link", "dangling")
                  else None)
    out["bytes"] = Path(fx["real"]).read_bytes()
    out["dir"] = (out["dir"], sorted(os.listdir(fx["dir"])))
    for dev in ("/dev/null", "/dev/full", "/dev/zero"):
        if os.path.exists(dev):
            out[dev] = stat.S_IFMT(os.lstat(dev).st_mode)
    return out


def _no_model(*args, **kwargs):
    raise ModelError("model loading is disabled in the CLI property test")


def test_every_command_survives_hostile_arguments(cli_world, monkeypatch):
    from selfguide import backends
    from selfguide.models import convert as model_convert
    from selfguide.models import loading as models
    from selfguide.training import fit as trainfit
    fx, ws = cli_world
    monkeypatch.setenv(store.WORKSPACE_ENV, str(ws))
    sandbox = ws.parent / "cwd"  # relative output paths land here, never in the repo
    sandbox.mkdir(exist_ok=True)
    monkeypatch.chdir(sandbox)
    for mod, fn in ((models, "load_model"), (backends, "get_generator"),
                    (model_convert, "convert_gguf")):
        monkeypatch.setattr(mod, fn, _no_model)
    monkeypatch.setattr(trainfit, "check_rows_fit", lambda *a, **k: trainfit.RowFit(
        0, 0, 0, None))
    before = _snapshot(fx)
    seen: dict[str, int] = {}

    many = int(os.environ.get("SELFGUIDE_CLI_EXAMPLES", "0"))  # a longer random search

    @settings(max_examples=many or 300, deadline=None, derandomize=not many,
              suppress_health_check=list(HealthCheck))
    @given(_argv_strategy(fx))
    def prop(argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(argv)
            except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
                rc = exc.code
        text = out.getvalue() + err.getvalue()
        assert "Traceback" not in text, (argv, text[-2000:])
        assert rc in (0, 2), (argv, rc, text[-2000:])
        seen[argv[0]] = seen.get(argv[0], 0) + 1
        past = "usage:" not in text or rc == 0
        seen["(past argparse)"] = seen.get("(past argparse)", 0) + past
        assert _snapshot(fx) == before, argv

    prop()
    print("CLI property examples per command:", seen)
    assert set(seen) - {"(past argparse)"} == set(_commands()), seen  # every command ran
    assert seen["(past argparse)"] > 100, seen  # most examples reach the command's own code
