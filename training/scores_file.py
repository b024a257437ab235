"""A scores file as ``retain score`` issued it: read and checked before a back-test trusts it.

Anything a back-test cannot trust is a ContractError naming the file, the column and the first rows (counted
from 1, as ``features.contract`` counts them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features.contract import CUSTOMER_ID, ContractError
from features.dates import parse_cutoff
from features.io import read_scores

PROBABILITY, BAND, VERSION, VALUE = "churn_probability", "risk_band", "churn_model_version", "predicted_value"
REQUIRED = (CUSTOMER_ID, "as_of", PROBABILITY, BAND, VERSION)


@dataclass(frozen=True)
class Issued:
    """A scores file as it was issued: its rows and the one as-of date they were scored at."""

    path: Path
    frame: pd.DataFrame
    as_of: pd.Timestamp

    def versions(self) -> list[str]:
        """The churn model versions that gave probabilities in this file."""
        return sorted(self.frame.loc[self.frame[PROBABILITY].notna(), VERSION].unique())


def read_issued(path: str | Path) -> Issued:
    """Read and check ``retain score``'s file; anything a back-test cannot trust is a ContractError naming the
    file and the column."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: no such file; expected the .parquet or .csv file retain score wrote")
    try:
        frame = read_scores(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ContractError(
            f"{path}: cannot read the scores file ({first}); expected the .parquet or .csv file retain score wrote"
        ) from exc
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ContractError(
            f"{path}: column {', '.join(missing)} missing; a file written by retain score has {', '.join(REQUIRED)}"
        )
    if frame.empty:
        raise ContractError(f"{path}: no rows; expected one row per scored customer")
    frame = frame.reset_index(drop=True)
    frame[CUSTOMER_ID] = frame[CUSTOMER_ID].astype("string")
    dupes = frame[CUSTOMER_ID][frame[CUSTOMER_ID].duplicated()].unique()[:5]
    if len(dupes):
        raise ContractError(f"{path}: column {CUSTOMER_ID}: repeated ids {list(dupes)}; expected one row a customer")
    frame[PROBABILITY] = _numbers(frame[PROBABILITY], path, PROBABILITY, low=0.0, high=1.0)
    if VALUE in frame.columns:
        frame[VALUE] = _numbers(frame[VALUE], path, VALUE, low=0.0, high=np.inf)
    scored = frame[PROBABILITY].notna()
    for col in (BAND, VERSION):
        empty = np.flatnonzero(scored & frame[col].isna())
        if len(empty):
            raise ContractError(f"{path}: column {col} is empty on rows {_rows(empty)} that have a {PROBABILITY}")
    return Issued(path, frame, _as_of(frame["as_of"], path))


def _rows(positions) -> list[int]:
    """The first offending rows, counted like a file's data rows (from 1), as features.contract counts them."""
    return [int(i) + 1 for i in positions[:5]]


def _numbers(values: pd.Series, path: Path, column: str, *, low: float, high: float) -> pd.Series:
    out = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = np.flatnonzero((values.notna() & out.isna()) | (out < low) | (out > high))
    if len(bad):
        shown = [values.iloc[i] for i in bad[:5]]
        raise ContractError(
            f"{path}: column {column}, rows {_rows(bad)}: expected a number in [{low:g}, {high:g}] or empty, "
            f"got {shown}"
        )
    return out


def _as_of(values: pd.Series, path: Path) -> pd.Timestamp:
    """The file's one as-of date; several (files of different runs put together) or none is an error."""
    if values.isna().any():
        raise ContractError(f"{path}: column as_of is empty on rows {_rows(np.flatnonzero(values.isna()))}")
    counts = values.astype(str).value_counts()
    if len(counts) > 1:
        shown = ", ".join(f"{day} on {n:,} rows" for day, n in counts.head(5).items())
        raise ContractError(
            f"{path}: column as_of holds {len(counts)} dates ({shown}); a back-test takes the file of one scoring "
            "run: split it by as_of and back-test each"
        )
    try:
        return parse_cutoff(counts.index[0])
    except ValueError as exc:
        raise ContractError(f"{path}: column as_of: {counts.index[0]!r} is not a date (YYYY-MM-DD)") from exc
