"""Numbers: amounts, counts and ages as float64, finite and within the contract's bounds.

``age`` or ``household_income`` given as bands (``45-54``, ``65+``) become numbers:
a closed band its midpoint, an open band half the usual band width beyond its edge.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from features.contract import Column, ContractError, bad_rows

log = logging.getLogger(__name__)

MAX_MAGNITUDE = 1e12  # no contract number (an amount in any currency, an age, a count) is larger; sums stay finite


def number(values: pd.Series, *, where: str, bands: Column | None = None) -> pd.Series:
    """Numbers as float64; ``bands``: the column also takes bands ('45-54', '65+'), read as numbers."""
    if pd.api.types.is_bool_dtype(values):
        values = values.astype("int8")
    out = pd.to_numeric(values, errors="coerce")
    bad = values.notna().to_numpy() & out.isna().to_numpy()
    if bad.any() and bands is not None:
        out, bad = _read_bands(values, out, bad, bands, where=where)
    if bad.any():
        hint = (
            " or a band such as 45-54, <25 or 65+ (for codes such as 'K', rename the column, e.g. to "
            f"{bands.name}_group, and it becomes a category attribute)"
            if bands is not None
            else ""
        )
        raise ContractError(f"{where}: wrong type, {bad_rows(bad, values)}; expected a number{hint}")
    out = out.astype("float64")
    huge = ~np.isfinite(out.to_numpy()) & out.notna().to_numpy() | (out.abs() > MAX_MAGNITUDE).to_numpy()
    if huge.any():
        raise ContractError(
            f"{where}: impossible value, {bad_rows(huge, values.astype(str))}; expected a finite number "
            f"of at most {MAX_MAGNITUDE:.0e} in size"
        )
    return out


_AMOUNT = r"[$€£¥]?\s*(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s*[kK]?"
_BANDS = {
    "closed": re.compile(rf"^(?P<lo>{_AMOUNT})\s*(?:-|–|to)\s*(?P<hi>{_AMOUNT})$", re.IGNORECASE),
    "below": re.compile(rf"^(?:<=?|under|below|less than|up to)\s*(?P<lo>{_AMOUNT})$", re.IGNORECASE),
    "above": re.compile(
        rf"^(?:>=?|over|above|more than)\s*(?P<lo>{_AMOUNT})$|^(?P<hi>{_AMOUNT})\s*(?:\+|or more|and over)$",
        re.IGNORECASE,
    ),
    "single": re.compile(rf"^(?P<lo>{_AMOUNT})$"),
}


def _amount(text: str) -> float:
    """'$50,000' -> 50000, '75k' -> 75000."""
    text = re.sub(r"[$€£¥,\s]", "", text)
    scale = 1000.0 if text[-1] in "kK" else 1.0
    return float(text.rstrip("kK")) * scale


def _band(text: str) -> tuple[str, float, float] | None:
    """A band's kind and edges (None: not a band): '45-54' -> ('closed', 45, 54), '65+' -> ('above', 65, 65)."""
    for kind, pattern in _BANDS.items():
        m = pattern.match(text.strip())
        if m:
            edges = [_amount(v) for v in m.groupdict().values() if v is not None]
            lo, hi = edges[0], edges[-1]
            return None if lo > hi else (kind, lo, hi)
    return None


def _read_bands(values: pd.Series, out: pd.Series, bad: np.ndarray, col: Column, *, where: str):
    """Bands as numbers: a closed band '45-54' is its midpoint 49.5; an open band ('<25', '65+') lies half
    the usual (median) closed band width beyond its edge, so with 5-year bands '<25' is 23 and '65+' is 67."""
    text = values[bad].astype("string")
    parsed = {v: _band(v) for v in text.unique()}
    widths = [hi - lo for kind, lo, hi in filter(None, parsed.values()) if kind == "closed"]
    half = float(np.median(widths)) / 2 if widths else 0.0
    floor = -np.inf if col.min is None else col.min
    ceiling = np.inf if col.max is None else col.max
    number = {
        "closed": lambda lo, hi: (lo + hi) / 2,
        "below": lambda lo, hi: max(lo - half, floor),  # '<5' years with 10-year bands is not -5
        "above": lambda lo, hi: min(hi + half, ceiling),
        "single": lambda lo, hi: lo,
    }
    read = {v: number[b[0]](b[1], b[2]) for v, b in parsed.items() if b is not None}
    out = out.copy()
    out[bad] = text.map(read).astype("float64").to_numpy()
    still_bad = values.notna().to_numpy() & out.isna().to_numpy()
    shown = sorted((n, v) for v, n in read.items() if parsed[v][0] != "single")
    if shown and not still_bad.any():  # said once the column is read; a bad value stops the job anyway
        mapping = ", ".join(f"{v!r} -> {n:g}" for n, v in shown[:12]) + (" ..." if len(shown) > 12 else "")
        log.warning(
            "%s: %s value(s) are bands, read as their midpoints (%s); an open band lies half the usual band width "
            "beyond its edge",
            where,
            f"{int(text.isin([v for _, v in shown]).sum()):,}",
            mapping,
        )
    return out, still_bad


def check_range(values: pd.Series, col: Column, *, where: str) -> None:
    for bound, op, word in ((col.min, np.less, ">="), (col.max, np.greater, "<=")):
        if bound is None:
            continue
        bad = op(values.to_numpy(), bound) & values.notna().to_numpy()
        if bad.any():
            adjective = "negative" if bound == 0 and word == ">=" else "out of range"
            raise ContractError(f"{where}: {adjective} value, {bad_rows(bad, values)}; expected {word} {bound:g}")
