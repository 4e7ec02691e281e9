"""Data for the Filter page of a Self-Instruct run.

What it does: loads the run's committed rounds once per file version, re-applies the
Self-Instruct instance filters with the page's ``SelfInstructFilterConfig`` through
``selfguide.selfinstruct_pipeline.candidates_table`` (pure, no generation), and shapes the
funnel and the nearest-instruction (ROUGE-L) table. Saving goes through the pipeline's
``refilter``, exactly what ``selfguide`` does.

What it does not do: change the instruction (pool) filters after generation: they decided
which instructions joined the pool and so what was generated next; the page shows them
read-only and the Synthesize page sets them for a new run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from selfguide import store
from selfguide.config import from_dict
from selfguide.methods.selfinstruct.config import SelfInstructFilterConfig

POOL_FIELDS = ("rouge_threshold", "min_instruction_words", "max_instruction_words",
               "blacklist", "banned_prefixes")
INSTRUCTION_REASONS = ("length", "start", "blacklist", "prefix", "rouge")
TABLE_COLS = ("decision", "kept", "drop_reason", "instruction", "input", "output",
              "is_classification", "nearest_score", "round", "id")


def run_method(run_dir: Path) -> str:
    cfg = store.read_json(run_dir / "config.json", default={}) or {}
    return str(cfg.get("method") or "selfguide") if isinstance(cfg, dict) else "selfguide"


def saved_config(run_dir: Path) -> SelfInstructFilterConfig:
    cfg = store.read_json(run_dir / "config.json", default={}) or {}
    return from_dict(SelfInstructFilterConfig, cfg.get("filters") or {}, strict=False)


@st.cache_data(max_entries=2, show_spinner="Reading the Self-Instruct rounds…")
def _rounds(run_dir: str, stamp: tuple) -> list[dict]:
    from selfguide.methods.selfinstruct import pipeline as sip

    d = Path(run_dir)
    cfg = store.read_json(d / "config.json", default={}) or {}
    return sip.load_rounds(d, sip.generation_hash(cfg))


def load_rounds(run_dir: Path) -> list[dict] | None:
    from selfguide.methods.selfinstruct import pipeline as sip

    path = run_dir / sip.ROUNDS_FILE
    if not path.is_file():
        return None
    s = path.stat()
    return _rounds(str(run_dir), (s.st_mtime, s.st_size))


def apply(rounds: list[dict], fcfg: SelfInstructFilterConfig,
          overrides: dict[str, bool]) -> pd.DataFrame:
    """The candidates table with the instance filters and manual decisions re-applied."""
    from selfguide.methods.selfinstruct import table as sid

    return sid.candidates_table(rounds, fcfg, overrides)


def filter_order() -> tuple[str, ...]:
    from selfguide.methods.selfinstruct import table as sid

    return tuple(sid.FILTER_COLUMNS)


def reason_counts(df: pd.DataFrame) -> pd.DataFrame:
    rows = [{"reason": "kept", "count": int(df["kept"].sum()), "kind": "kept"}]
    for name in filter_order():
        c = int((df["drop_reason"] == name).sum())
        if c:
            rows.append({"reason": name, "count": c, "kind": "dropped"})
    return pd.DataFrame(rows)


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


def save(run_dir: Path, fcfg: SelfInstructFilterConfig) -> dict:
    from selfguide.methods.selfinstruct import pipeline as sip

    return sip.refilter(run_dir, fcfg)
