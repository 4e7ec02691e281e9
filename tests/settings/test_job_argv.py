"""selfguide.settings.cli: job command lines from configs, exactly what the CLI parses."""

from __future__ import annotations

from selfguide.cli import build_parser
from selfguide.methods.selfguide.config import SynthesisConfig
from selfguide.methods.selfinstruct.config import SelfInstructConfig, SelfInstructFilterConfig
from selfguide.settings import cli as cliargs
from selfguide.settings.fields import ModelConfig, from_dict, overrides_from_args


def test_job_argv_order_and_round_trip():
    syn = from_dict(SynthesisConfig, {"rounds": 2, "n_samples": 3})
    model = ModelConfig(model="/models/x", precision="fp32")
    argv = cliargs.job_argv("synthesize", "task.json", run="r1", full=[syn], configs=[model],
                            flags=["--overwrite"])
    assert argv[:4] == ["synthesize", "task.json", "--run", "r1"]
    assert argv[-1] == "--overwrite"
    args = build_parser().parse_args(argv)
    assert from_dict(SynthesisConfig, overrides_from_args(args, SynthesisConfig)) == syn
    assert from_dict(ModelConfig, overrides_from_args(args, ModelConfig)) == model
    assert args.overwrite


def test_job_argv_only_changed_fields_and_plain_options():
    cfg = SelfInstructConfig()
    fcfg = from_dict(SelfInstructFilterConfig, {"rouge_threshold": 0.5})
    argv = cliargs.job_argv("self-instruct", run="r1", configs=[cfg, fcfg])
    assert argv == ["self-instruct", "--run", "r1", "--rouge-threshold", "0.5"]
    assert cliargs.job_argv("export-model", run="r", options={"out": "/o", "quant": "f16"},
                            flags=["--force"]) == ["export-model", "--run", "r", "--out", "/o",
                                                   "--quant", "f16", "--force"]


def test_config_from_argv_reads_back_what_job_argv_wrote():
    from selfguide.settings.training import TrainConfig

    cfg = from_dict(TrainConfig, {"max_steps": 40, "lora_r": 8, "method": "lora",
                                  "force": True, "select_best": False})
    argv = cliargs.job_argv("train", run="r1", configs=[cfg], flags=["--other", "x"])
    assert cliargs.config_from_argv(TrainConfig, argv) == cfg  # other options are ignored
    assert cliargs.config_from_argv(TrainConfig, ["train", "--run", "r1"]) == TrainConfig()
    preset = cliargs.config_from_argv(TrainConfig, ["train", "--run", "r", "--preset", "paper",
                                                    "--lora-r", "4"],
                                      presets={"paper": {"epochs": 5.0, "lora_r": 16}})
    assert (preset.epochs, preset.lora_r) == (5.0, 4)  # the preset, then explicit options
