"""A base model (its tokenizer has no chat template) labels as plain text only: SELF-GUIDE
does not probe a "chat form" that would be plain text again, and labelling.json says the
model decided (a real tiny Llama without a template; the same model with one probes both)."""

from __future__ import annotations

import pytest
from sgtest.selfguide import TASK

from selfguide.methods.selfguide import pipeline as P
from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
from selfguide.runs.rundir import RunDir

CFG = SynthesisConfig(rounds=1, prompts_per_round=4, n_samples=2, input_max_new_tokens=8,
                      output_max_new_tokens=2, probe_inputs=3, annotate_batch=4)


@pytest.mark.parametrize("template", [False, True])
def test_labelling_protocols_follow_the_chat_template(template, tmp_path, tiny_model_builder):
    from selfguide import backends
    from selfguide.settings.fields import ModelConfig

    model = tiny_model_builder(tmp_path / "m", chat_template=template)
    gen = backends.get_generator("hf", config=ModelConfig(model=str(model), precision="fp32"))
    run = tmp_path / "run"
    P.prepare_run(run, TASK, CFG, FilterConfig())
    P.synthesize(run, TASK, CFG, gen, chat=True, stream=None)
    lab = RunDir(run).read_labelling()
    if template:
        assert set(lab["evidence"]["protocols"]) == {"chat", "plain"}
        assert lab["chosen_by"] == "auto"
    else:
        assert set(lab["evidence"]["protocols"]) == {"plain"}
        assert lab["protocol"] == "plain" and lab["chosen_by"] == "model"
        assert "chat form" not in lab["reason"]
