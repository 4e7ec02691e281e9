"""Library messages in the words of the studio's pages.

What it does: turns a ``SelfGuideError`` (or any message text) into what a page shows:
the error's ``ui_hint`` where it has one, and otherwise its hint with command-line words
mapped to the pages' — an option ``--label-strategy calibrated`` becomes the setting
*label strategy* (as the settings forms label it), ``'selfguide train --run NAME'``
becomes the **Finetune** page.

What it does not do: write the messages (the library does, once, for both) or draw them
(``studio.app.widgets.show_error``).
"""

from __future__ import annotations

import re

# A CLI command in a hint -> the page that does the same.
# A synthesis method's own command (its job stage) is the Synthesize page too.
COMMAND_PAGES = {"synthesize": "Synthesize",
                 "filter": "Filter", "train": "Finetune", "eval": "Compare",
                 "export-model": "Compare", "export": "Filter", "run": "Synthesize"}

_COMMAND = re.compile(r"(?:[Rr]un )?[`']selfguide ([a-z-]+)[^`']*[`']")
_PASS_SWITCH = re.compile(r"\b([Pp])ass --(force|overwrite)\b")
_FLAG_BOOL = re.compile(r"--([a-z][a-z0-9-]*) (true|false)\b")
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")


def _method_commands() -> tuple[str, ...]:
    from selfguide import methods

    return methods.stages()


def _command(m: re.Match) -> str:
    page = COMMAND_PAGES.get(m.group(1))
    if not page and m.group(1) in _method_commands():
        page = "Synthesize"
    if not page:
        return m.group(0)
    verb = ("U" if m.group(0)[0] == "R" else "u") + "se " if m.group(0)[:4].lower() == "run " \
        else ""
    return f"{verb}the **{page}** page"


def _setting(name: str) -> str:
    return f"*{name.replace('-', ' ')}*"


def page_words(text: str) -> str:
    """``text`` with CLI commands named as pages and options named as settings."""
    text = _COMMAND.sub(_command, text)
    text = _PASS_SWITCH.sub(lambda m: ("T" if m.group(1) == "P" else "t") + f"ick *{m.group(2)}*",
                            text)
    text = _FLAG_BOOL.sub(lambda m: _setting(m.group(1)) + ("" if m.group(2) == "true"
                                                            else " off"), text)
    return _FLAG.sub(lambda m: _setting(m.group(1)), text)


def page_text(exc: BaseException) -> str:
    """What a page shows for ``exc``: its message and its hint in the pages' words."""
    message = getattr(exc, "message", None)
    if message is None:
        return page_words(str(exc))
    hint = getattr(exc, "ui_hint", None) or getattr(exc, "hint", None)
    return page_words(message if not hint else f"{message}\nHint: {hint}")


def label_caveat(report: dict | None) -> str | None:
    """The Filter page's caveat, for the pages after it (Finetune before Launch, Compare
    beside the gain): the labels do not follow the inputs. None when the dataset report
    does not say so."""
    lab = (report or {}).get("labelling") or {}
    if not isinstance(lab, dict) or lab.get("beats_chance") is not False:
        return None
    return ("Caveat from the Filter page: the model's own labels do not follow its inputs "
            "(they agree with the asked-for labels no better than chance). Training on them "
            "teaches the answer format, not the task, so a gain may come from the format "
            "alone. Check the labels by hand on the Filter page, or use a bigger model.")
