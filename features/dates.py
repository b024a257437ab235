"""Dates: timestamps read without guessing day from month, refused when implausible, and the cutoff.

Every time in Retain is naive UTC. A column of text dates is read as ISO 8601 or
as the one common format (:data:`DATE_FORMATS`) that fits all of it; a column that
reads two ways (01/02/2024) is refused and the message asks for ``date_format``.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from features.contract import ContractError, bad_rows

log = logging.getLogger(__name__)

EARLIEST = pd.Timestamp("1900-01-01")
LATE_YEARS = 10  # a date more than max(10 years, twice the column's spread) after its median is a typo

_TZ_SUFFIX = re.compile(r"\d:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})$")  # after a time: 31-05-2024 has none


# Common date formats besides ISO 8601, each tried on a whole column. Day-first and month-first
# readings of the same digits are both listed, so a column that fits both is refused, never guessed.
_DAY_MONTH = tuple(f"{a}{sep}{b}{sep}%Y" for sep in ("/", "-", ".") for a, b in (("%m", "%d"), ("%d", "%m"))) + (
    "%d %b %Y",
    "%d-%b-%Y",
    "%b %d %Y",
    "%b %d, %Y",
)
_CLOCK = ("", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")
DATE_FORMATS = tuple(d + c for d in _DAY_MONTH for c in _CLOCK)
_ISO = "ISO8601"
_ISO_EXPECTED = "an ISO date or timestamp such as 2024-05-01 or 2024-05-01T10:00:00"
_SET_FORMAT = "set date_format in configs/features.yaml"


def parse_time(values: pd.Series, *, where: str, date_format: str | None = None) -> pd.Series:
    """Parse timestamps into naive UTC (zoned values are converted; mixing zoned and naive is refused).

    With ``date_format`` (a strptime format such as ``%m/%d/%Y``) every value must match it.
    Without, ISO 8601 is tried, then the common formats in :data:`DATE_FORMATS`, one format
    for the whole column; a column that reads two ways (01/02/2024: January 2 or February 1?)
    is refused and the message asks for ``date_format``.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.astype("datetime64[us]")
    text = values.astype("string").str.strip().reset_index(drop=True)
    present = text.notna().to_numpy()

    def rows(bad: np.ndarray) -> str:
        return bad_rows(bad, values)

    if date_format is not None:
        parsed = _read_dates(text, date_format)
        bad = present & parsed.isna().to_numpy()
        if bad.any():
            raise ContractError(
                f"{where}: unparseable date, {rows(bad)}; expected dates in date_format {date_format!r} "
                f"(from configs/features.yaml), such as {pd.Timestamp('2024-05-31 10:00').strftime(date_format)!r}"
            )
        return parsed.set_axis(values.index)
    aware = text.str.contains(_TZ_SUFFIX, na=False).to_numpy()
    if aware.any() and not aware[present].all():
        raise ContractError(
            f"{where}: mixed time-zone-aware and naive timestamps; {rows(present & ~aware)} have no zone while "
            "others do. Expected all values with a zone (e.g. 2024-05-01T10:00:00+02:00) or all without."
        )
    iso = _read_dates(text, _ISO)
    if not (present & iso.isna().to_numpy()).any():
        return iso.set_axis(values.index)
    # not ISO 8601: one common format for the whole column, chosen on its distinct values (dates repeat a lot)
    codes, distinct = pd.factorize(text)

    def distinct_rows(bad_distinct: np.ndarray) -> str:
        return rows(present & np.asarray(bad_distinct, dtype=bool)[np.maximum(codes, 0)])

    parsed = _guess_format(pd.Series(distinct, dtype="string"), where=where, rows=distinct_rows, zoned=aware.any())
    out = parsed.to_numpy()[np.maximum(codes, 0)]
    out[codes < 0] = np.datetime64("NaT")
    return pd.Series(out, index=values.index, dtype="datetime64[us]")


def _read_dates(text: pd.Series, fmt: str) -> pd.Series:
    """``text`` read with one format, as naive UTC; NaT where a value does not fit."""
    zoned = fmt == _ISO or "%z" in fmt
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=zoned)
    if zoned:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[us]")


def _guess_format(distinct: pd.Series, *, where: str, rows, zoned: bool) -> pd.Series:
    """The one reading of a column of distinct date texts that are not all ISO 8601: the single common
    format that fits every value; refused when none fits or when two fit and disagree."""
    sample = distinct.iloc[:1000]
    if not zoned:
        fits = [fmt for fmt in DATE_FORMATS if _read_dates(sample, fmt).notna().all()]
        for i, fmt in enumerate(fits):
            parsed = _read_dates(distinct, fmt)
            if parsed.isna().any():
                continue
            for other in fits[i + 1 :]:
                _refuse_if_ambiguous(distinct, parsed, fmt, other, where=where, rows=rows)
            log.info("%s: dates read as %s", where, fmt)
            return parsed
    # nothing fits: the reading that parses most values (ties: ISO first) names the rows that break it
    readings = [(_ISO, _read_dates(distinct, _ISO))]
    if not zoned:
        readings += [(f, _read_dates(distinct, f)) for f in DATE_FORMATS if _read_dates(sample, f).notna().any()]
    fmt, parsed = max(readings, key=lambda r: int(r[1].notna().sum()))
    expected = _ISO_EXPECTED if fmt == _ISO else f"dates in one format like the others ({fmt})"
    raise ContractError(
        f"{where}: unparseable date, {rows(parsed.isna().to_numpy())}; expected {expected}, or {_SET_FORMAT} "
        "(e.g. date_format: '%d/%m/%Y') to declare the format"
    )


def _refuse_if_ambiguous(distinct: pd.Series, parsed: pd.Series, fmt: str, other: str, *, where: str, rows) -> None:
    """Raise when ``other`` also reads every value, differently (01/02/2024: January 2 or February 1?).

    Read in chunks: the other format usually fails early (a day above 12), so it costs little."""
    step, differs = 20_000, np.zeros(len(distinct), dtype=bool)
    for start in range(0, len(distinct), step):
        chunk = _read_dates(distinct.iloc[start : start + step], other)
        if chunk.isna().any():
            return
        differs[start : start + step] = (chunk != parsed.iloc[start : start + step]).to_numpy()
    if differs.any():
        i = int(np.flatnonzero(differs)[0])
        seen_as = _read_dates(distinct.iloc[i : i + 1], other).iloc[0]
        raise ContractError(
            f"{where}: ambiguous dates, day and month cannot be told apart: {distinct.iloc[i]!r} is "
            f"{parsed.iloc[i]:%Y-%m-%d} read as {fmt} but {seen_as:%Y-%m-%d} read as {other} "
            f"({rows(differs)}); {_SET_FORMAT} to say which, e.g. date_format: '{fmt}'"
        )


def parse_cutoff(value) -> pd.Timestamp:
    """A cutoff (any instant a user gives) as a naive UTC timestamp: parsed once, where it comes in; what is
    before and after it is :class:`features.snapshot.Snapshot`'s rule."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def check_dates(values: pd.Series, raw: pd.Series, *, where: str) -> None:
    """Refuse dates outside the data's plausible range: before 1900, or more than max(10 years, twice the
    column's spread below its median) after the median, such as a 9999-01-01 that would move every cutoff."""
    present = values.dropna()
    if present.empty:
        return
    median, first = present.quantile(0.5), max(present.min(), EARLIEST)
    spread = min(max(median - first, pd.Timedelta(0)), pd.Timedelta(days=365 * 60))  # no overflow near 2262
    latest = median + max(pd.Timedelta(days=365 * LATE_YEARS), 2 * spread)
    bad = ((values < EARLIEST) | (values > latest)).fillna(False).to_numpy()
    if bad.any():
        raise ContractError(
            f"{where}: implausible date, {bad_rows(bad, raw)}; expected dates from "
            f"{EARLIEST:%Y-%m-%d} to {latest:%Y-%m-%d} (half the column's dates are before {median:%Y-%m-%d}); "
            "fix or drop those rows"
        )
