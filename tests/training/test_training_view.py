"""Training as the Finetune page shows it (issue 40): a resumed training keeps the curve
of its first steps, and a first training does not say its settings changed."""

from __future__ import annotations

from sgtest.training import make_run

from selfguide.runs.rundir import RunDir


def test_a_resumed_training_replays_the_curve_before_the_checkpoint(tmp_path):
    """Issue 40: after Cancel and Resume the loss curve keeps its first steps."""
    import io
    from types import SimpleNamespace

    from selfguide.runs.events import EventLog, read_events
    from selfguide.training.loop import make_events_callback

    log = EventLog(tmp_path / "events.jsonl")
    cb = make_events_callback(log, 8, stream=io.StringIO())
    state = SimpleNamespace(is_world_process_zero=True, global_step=4, max_steps=8,
                            num_input_tokens_seen=0, log_history=[
                                {"step": 2, "epoch": 0.5, "loss": 2.5, "learning_rate": 2e-4},
                                {"step": 4, "epoch": 1.0, "loss": 2.1, "learning_rate": 1e-4},
                                {"step": 4, "epoch": 1.0, "eval_loss": 2.3}])
    cb.on_train_begin(None, state, None)
    evs = read_events(tmp_path / "events.jsonl")
    from studio.app.jobs import loss_points
    assert [(p["step"], p["loss"], p["kind"]) for p in loss_points(evs)] == [
        (2, 2.5, "train"), (4, 2.1, "train"), (4, 2.3, "validation")]
    assert evs[-1]["type"] == "train_begin" and evs[-1]["step"] == 4


def test_a_first_training_does_not_say_its_settings_changed(workspace, tmp_path):
    from selfguide.runs.events import EventLog, read_events
    from selfguide.settings.fields import ModelConfig
    from selfguide.settings.training import TrainConfig
    from selfguide.training.trainer import _resume_point

    rd = RunDir(make_run(workspace, tmp_path / "no-model", n=2))
    rd.checkpoints_dir.mkdir(parents=True)  # the trainer made its output folder
    log = EventLog(tmp_path / "events.jsonl")
    assert _resume_point(rd, TrainConfig(), ModelConfig(model="embedded"), log) is None
    assert not [e for e in read_events(tmp_path / "events.jsonl")
                if "starting from scratch" in str(e.get("message"))]
    (rd.checkpoints_dir / "checkpoint-2").mkdir(parents=True)  # then other settings
    assert _resume_point(rd, TrainConfig(epochs=5), ModelConfig(model="embedded"), log) is None
    assert [e for e in read_events(tmp_path / "events.jsonl")
            if e.get("message") == "training settings changed: starting from scratch"]
