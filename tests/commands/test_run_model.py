"""``selfguide run`` with your own model (issue 35): the model options reach synthesis,
which records them for training and evaluation."""

from __future__ import annotations

from selfguide.cli import build_parser
from selfguide.commands import run as run_cmd


def test_run_takes_the_model_options_and_hands_them_to_synthesize(monkeypatch, workspace,
                                                                  tmp_path):
    task = tmp_path / "t.json"
    task.write_text('{"instruction": "Say it back.", "examples": [{"input": "a", "output": '
                    '"a"}, {"input": "b", "output": "b"}, {"input": "c", "output": "c"}]}')
    args = build_parser().parse_args(["run", str(task), "--run", "own", "--model",
                                      "/models/qwen.gguf", "--precision", "fp32", "--chat",
                                      "false"])
    assert run_cmd.model_argv(args) == ["--model", "/models/qwen.gguf", "--precision", "fp32",
                                        "--chat", "false"]
    seen = []

    def stage(argv):
        seen.append(argv)
        raise SystemExit(0)  # stop after the first stage: only its argv matters here

    monkeypatch.setattr(run_cmd, "_stage", stage)
    try:
        run_cmd.run(args)
    except SystemExit:
        pass
    assert seen[0][:4] == ["synthesize", str(task), "--run", "own"]
    assert seen[0][4:10] == ["--model", "/models/qwen.gguf", "--precision", "fp32", "--chat",
                             "false"]


def test_run_without_model_options_passes_none():
    args = build_parser().parse_args(["run", "t.json"])
    assert run_cmd.model_argv(args) == []
