"""Files the studio offers for download, made safe to open in a spreadsheet.

What it does: turns a table into CSV bytes with every text cell that a spreadsheet would run
as a formula (one starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return:
"CSV injection", OWASP) prefixed with a single quote, so it opens as the text it is. Model
output and uploaded rows are data, never formulas.

What it does not do: render anything or change the run's files (the JSONL/JSON downloads
are the files as they are).
"""

from __future__ import annotations

import csv
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_bytes(df: Any) -> bytes:
    """A DataFrame as UTF-8 CSV: plain cells (numbers, text, JSON lists; never a Python
    repr, ``selfguide.methods.candidates.plain_frame``), its text cells (and column names)
    neutralised."""
    from pandas.api.types import is_numeric_dtype

    from selfguide.methods.candidates import plain_frame

    safe = plain_frame(df).rename(columns=lambda c: neutralise(str(c)))
    safe = safe.apply(lambda col: col if is_numeric_dtype(col) else col.map(neutralise))
    # Text quoted always: pandas leaves a lone CR unquoted, which splits the row.
    return safe.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode("utf-8")
