"""A DuckDB connection over pandas frames: one place that registers tables."""

from __future__ import annotations

import duckdb
import pandas as pd


def connect(**frames: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB with each frame as a view; no copy of the data is made."""
    con = duckdb.connect()
    for name, frame in frames.items():
        con.register(name, frame)
    return con


def ts(value: pd.Timestamp) -> str:
    """A SQL timestamp literal; values come from ``parse_cutoff``, never from users' SQL."""
    return f"TIMESTAMP '{pd.Timestamp(value).isoformat(sep=' ')}'"
