"""Regenerate the configuration tables in README.md from the config dataclasses' help text.

Usage: ``python scripts/readme_tables.py`` (rewrites README.md in place) or
``python scripts/readme_tables.py --check`` (exit 1 if README.md is out of date; used by a test).
The tables sit between ``<!-- config:NAME -->`` and ``<!-- /config:NAME -->`` markers.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from selfguide.settings.fields import ModelConfig, SamplingConfig, markdown_table
from selfguide.settings.evaluation import EvalConfig
from selfguide.settings.training import TrainConfig
from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
from selfguide.methods.selfinstruct.config import SelfInstructConfig, SelfInstructFilterConfig

README = Path(__file__).resolve().parents[1] / "README.md"
TABLES = {cls.__name__: cls for cls in (ModelConfig, SamplingConfig, SynthesisConfig,
                                        FilterConfig, SelfInstructConfig,
                                        SelfInstructFilterConfig, TrainConfig, EvalConfig)}


def render(text: str) -> str:
    for name, cls in TABLES.items():
        pat = re.compile(rf"(<!-- config:{name} -->\n).*?(<!-- /config:{name} -->)", re.S)
        text = pat.sub(lambda m, c=cls: m.group(1) + markdown_table(c) + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if "--check" in argv:
        if new != text:
            print("README.md config tables are out of date: run python scripts/readme_tables.py")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
