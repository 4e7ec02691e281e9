"""The one label-strategy table and the typed labelling choice (issue 32): the config's
choices, the CLI's, what each strategy greys out, and the report's JSON keys kept."""

from __future__ import annotations

import json

from selfguide.methods.selfguide import strategies as S
from selfguide.methods.selfguide.choice import LabelChoice
from selfguide.methods.selfguide.config import LABEL_STRATEGIES


def test_the_config_and_the_label_command_read_the_table():
    assert LABEL_STRATEGIES == ("auto", "vote", "rank", "calibrated", "own", "target", "agree")
    assert S.LABEL_COMMAND_NAMES == ("auto", "vote", "rank", "calibrated", "own")
    assert set(S.SELF_STRATEGIES) == {s.name for s in S.TABLE if s.self_label}


def test_what_each_strategy_uses():
    assert S.in_effect("auto") == "vote" and S.in_effect("rank") == "rank"
    assert S.uses_vote("auto", "vote") and S.uses_vote("agree", "vote")
    assert not S.uses_vote("agree", "calibrated") and not S.uses_vote("target", "vote")
    assert S.uses_calibration("agree", "calibrated") and S.uses_calibration("calibrated", "vote")
    assert S.labels_from("agree", "calibrated") == "calibrated"
    assert S.labels_from("target", "vote") == "target"
    assert [s for s in LABEL_STRATEGIES if not S.balances(s)] == ["own"]
    assert S.source("agree", "vote") == "the target label, kept where the vote label agrees"


AUTO = {"protocol": "chat", "protocol_chosen_by": "auto", "protocol_reason": "r",
        "requested": "auto", "strategy": "own", "strategy_chosen_by": "auto",
        "answer_protocol": "chat", "agreement": {"rows": 12, "agree": 0.5, "chance": 0.5,
                                                 "p": 0.6},
        "best_self": "rank", "beats_chance": False, "reason": "why"}
USER = {"protocol": "plain", "protocol_chosen_by": "user", "protocol_reason": "r",
        "requested": "rank", "strategy": "rank", "strategy_chosen_by": "user",
        "answer_protocol": None, "beats_chance": None,
        "reason": "Label strategy rank was set by hand."}
GENERATION = {"protocol": "chat", "protocol_chosen_by": "auto", "protocol_reason": "r",
              "requested": "auto", "strategy": None, "strategy_chosen_by": None,
              "beats_chance": True, "reason": "r"}


def test_label_choice_writes_the_keys_reports_always_had():
    for old in (AUTO, USER, GENERATION):
        choice = LabelChoice.from_dict(old)
        assert json.dumps(choice.to_dict()) == json.dumps(old)  # same keys, same order


def test_label_choice_reads_old_and_odd_reports():
    assert LabelChoice.from_dict(None) is None and LabelChoice.from_dict({}) is None
    old = LabelChoice.from_dict({"protocol": "chat", "strategy": "vote", "gone": 1})
    assert old.strategy == "vote" and old.reason is None and old.beats_chance is None
    assert LabelChoice(run="r").to_dict()["run"] == "r"
    assert "run" not in LabelChoice().to_dict()
