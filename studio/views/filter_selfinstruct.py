"""Self-Instruct's own views on the Filter page: its rounds, its table, nearest instructions.

What it does: loads the run's committed rounds once per file version, re-applies the
Self-Instruct instance filters with the page's ``SelfInstructFilterConfig`` through
``selfguide.methods.selfinstruct.table.candidates_table`` (pure, no generation), and shapes
the nearest-instruction (ROUGE-L) table. Which method a run has, its saved config, the
filter fields frozen after generation (the instruction/pool filters: they decided which
instructions joined the pool and so what was generated next), the funnel order and saving
all go through the method registry in :mod:`studio.views.filter_rows`.

What it does not do: change the pool filters after generation (the page shows them
read-only and the Synthesize page sets them for a new run), or save (``filtering.save_dataset``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from selfguide.methods.selfinstruct.config import SelfInstructFilterConfig
from selfguide.methods.selfinstruct.filters import INSTRUCTION_FILTERS as INSTRUCTION_REASONS
from selfguide.runs.rundir import RunDir

TABLE_COLS = ("decision", "kept", "drop_reason", "instruction", "input", "output",
              "is_classification", "nearest_score", "round", "id")


@st.cache_data(max_entries=2, show_spinner="Reading the Self-Instruct rounds…")
def _rounds(run_dir: str, stamp: tuple) -> list[dict]:
    from selfguide.methods.selfinstruct import pipeline as sip

    run = RunDir(run_dir)
    return sip.load_rounds(run, sip.generation_hash(run.read_config()))


def load_rounds(run_dir: Path) -> list[dict] | None:
    path = RunDir(run_dir).rounds_file
    if not path.is_file():
        return None
    s = path.stat()
    return _rounds(str(run_dir), (s.st_mtime, s.st_size))


def apply(rounds: list[dict], fcfg: SelfInstructFilterConfig,
          overrides: dict[str, bool]) -> pd.DataFrame:
    """The candidates table with the instance filters and manual decisions re-applied."""
    from selfguide.methods.selfinstruct import table

    return table.candidates_table(rounds, fcfg, overrides)


def nearest_instructions(df: pd.DataFrame, top: int = 100) -> pd.DataFrame:
    """One row per generated instruction: its nearest pool instruction and ROUGE-L."""
    inst = df.drop_duplicates("instruction_id") if "instruction_id" in df.columns else df
    inst = inst.sort_values("nearest_score", ascending=False).head(top)
    return pd.DataFrame({"instruction": inst["instruction"].astype(str).tolist(),
                         "nearest": inst["nearest"].astype(str).tolist(),
                         "score": inst["nearest_score"].astype(float).round(3).tolist(),
                         "dropped by": inst["drop_reason"].where(
                             inst["drop_reason"].isin(INSTRUCTION_REASONS), "")
                         .astype(str).tolist()})
