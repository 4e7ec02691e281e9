"""Issue 36: ``train`` writes TensorBoard event files beside its own events (transformers'
``TensorBoardCallback``, one folder per training under ``RUN/train/tb/``)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sgtest.training import checkpointing_cfg, make_run

from selfguide.runs.rundir import RunDir
from selfguide.training import loop
from selfguide.training import trainer as training


def test_no_callback_without_a_folder_or_tensorboard(monkeypatch, tmp_path):
    assert loop.tensorboard_callback(None) is None
    from transformers import integrations

    monkeypatch.setattr(integrations, "is_tensorboard_available", lambda: False)
    assert loop.tensorboard_callback(tmp_path) is None


@pytest.mark.slow
def test_train_writes_tensorboard_scalars(workspace, tiny_model_dir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = make_run(workspace, tiny_model_dir, "tb")
    cfg = replace(checkpointing_cfg(max_steps=2), logging_steps=1)
    training.train(run, cfg)
    tb = RunDir(run).tensorboard_dir
    folders = [p for p in tb.iterdir() if p.is_dir()]
    assert len(folders) == 1 and list(folders[0].glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(folders[0]))
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2]
