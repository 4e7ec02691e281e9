"""A tiny job worker for the reliability tests (run as ``python -m jobworker``).

It uses the real :func:`selfguide.jobs.worker` context manager, so the tests exercise the
same status/heartbeat/SIGTERM code as the stage commands, without loading a model.

Usage: ``python -m jobworker RUN_DIR STAGE MODE [SECONDS]`` where MODE is one of
``sleep`` (report progress for SECONDS), ``fail`` (raise a SelfGuideError), ``crash``
(raise a RuntimeError), ``spawn`` (start two grandchildren, one ignoring SIGTERM, then
sleep), ``stubborn`` (ignore SIGTERM in the worker itself), ``wraps`` (re-raise the cancel as a
RuntimeError, as a library's import wrapper does), ``diskfull`` (every write fails
with ENOSPC), ``env`` (print a harmless
line about the environment and finish). This file is test support, not a test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from selfguide import jobs
from selfguide.errors import ConfigError
from selfguide.runs.events import Progress


def main(argv: list[str]) -> int:
    run_dir, stage, mode = Path(argv[0]), argv[1], argv[2]
    seconds = float(argv[3]) if len(argv) > 3 else 30.0
    with jobs.worker(run_dir, stage) as events:
        if mode == "fail":
            raise ConfigError("Invalid value for 'max_new_tokens': must be >= 1.")
        if mode == "crash":
            raise RuntimeError("boom from the test worker")
        if mode == "diskfull":  # the device fills up on the first write after start-up
            import errno

            from selfguide.runs import store
            real = store._write_fd

            def full(fd, data):  # only data files fill up; the tiny status write still fits
                if os.readlink(f"/proc/self/fd/{fd}").endswith("inputs.jsonl"):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                real(fd, data)
            store._write_fd = full
            store.append_jsonl(run_dir / "inputs.jsonl", [{"id": 1}])
        if mode == "wraps":  # library code that re-raises what it catches as its own error
            (run_dir / "wrapping.txt").write_text("errors are wrapped from now on")
            while True:
                try:
                    time.sleep(0.05)
                except Exception as exc:  # as transformers' lazy imports do
                    raise RuntimeError(f"Failed to import a module: {exc}") from exc
        if mode == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            (run_dir / "ignoring.txt").write_text("SIGTERM ignored from now on")
        kids = []
        if mode == "spawn":
            code = "import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" \
                   "print('ready', flush=True)\ntime.sleep(600)"
            kids.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE))
            kids[0].stdout.readline()  # SIGTERM is ignored from here on
            kids.append(subprocess.Popen(["sleep", "600"]))
            (run_dir / "kids.txt").write_text(" ".join(str(k.pid) for k in kids))
        if mode == "env":
            print("token present:", "HF_TOKEN" in os.environ, flush=True)
        total = max(1, int(seconds * 10))
        prog = Progress(stage, total, events=events, stream=None)
        for _ in range(total):
            time.sleep(0.1)
            prog.update(1)
        print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
