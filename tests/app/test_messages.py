"""Issue 15 item 5: library messages shown in the pages' words (no CLI options, commands
or JSON syntax on a page), while the CLI keeps its own text."""

from __future__ import annotations

from selfguide.errors import DatasetError, TaskError
from studio.app import messages


def test_cli_options_become_the_settings_the_forms_show():
    text = messages.page_words("Lower --lora-r, --batch-size or --max-length, turn on "
                               "--gradient-checkpointing true, or free memory.")
    assert text == ("Lower *lora r*, *batch size* or *max length*, turn on "
                    "*gradient checkpointing*, or free memory.")
    assert messages.page_words("pass --force to train anyway.") == "tick *force* to train anyway."
    assert "--" not in messages.page_words("Use --max-length 0 (auto) or at least 300.")


def test_cli_commands_become_pages():
    assert messages.page_words("Run 'selfguide train --run NAME' first.") == \
        "Use the **Finetune** page first."
    assert messages.page_words("Create it with 'selfguide synthesize TASK --run NAME'.") == \
        "Create it with the **Synthesize** page."


def test_an_error_carries_both_texts():
    exc = TaskError("A task needs at least 1 demonstration.",
                    hint='Add "examples": [{"input": "...", "output": "..."}, ...].',
                    ui_hint="Add rows to the Demonstrations table.")
    assert '"examples"' in str(exc)  # the CLI (and a task file's author) sees the JSON
    shown = messages.page_text(exc)
    assert shown == "A task needs at least 1 demonstration.\nHint: Add rows to the " \
                    "Demonstrations table."
    plain = DatasetError("All rows are identical.", hint="pass --force to train anyway.")
    assert messages.page_text(plain) == "All rows are identical.\nHint: tick *force* to train " \
                                        "anyway."
    assert messages.page_text(ValueError("x --y")) == "x *y*"


def test_the_label_report_names_the_setting_not_the_option():
    import inspect

    from selfguide.methods.selfguide import report

    assert "--label-strategy" not in inspect.getsource(report)
