"""validate(table, frame): any DataFrame into a checked, typed contract table, or a ContractError.

Real exports are accepted as they come: order lines are summed into orders
(:mod:`features.order_lines`), dates in one common format per column are read
without guessing day from month (:mod:`features.dates`), and numbers given as
bands become band midpoints (:mod:`features.numeric`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import NO_OFFER, OFFERS, ORDERS, TABLES, ContractError, Table, bad_rows
from features.dates import check_dates, parse_time
from features.numeric import check_range, number
from features.order_lines import all_distinct, orders_from_lines


def validate(
    table: Table | str,
    frame: pd.DataFrame,
    *,
    source: str | None = None,
    offers: tuple[str, ...] = (),
    allow_empty: bool = False,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Check and type one table; return a new frame, never modify the input.

    ``offers`` is the catalog's offer names; the control name ``none`` is always allowed.
    An empty table is an error (a user's empty file is a mistake) unless ``allow_empty``:
    a slice of the customers (a Spark partition) may hold no rows of a table.
    ``date_format``: the strptime format of text dates (None: ISO 8601 or one unambiguous
    common format per column, see :func:`features.dates.parse_time`). Orders given as order lines come
    back summed into orders (:func:`features.order_lines.orders_from_lines`).
    """
    table = TABLES[table] if isinstance(table, str) else table
    source = source or table.name
    if len(frame) == 0 and not allow_empty:
        raise ContractError(f"{source}: the table is empty; expected at least one data row")
    frame = frame.rename(columns=lambda c: str(c).strip())
    missing = [c for c in table.required if c not in frame.columns]
    if missing:
        raise ContractError(
            f"{source}: missing required column(s) {missing}; "
            f"the {table.name} table needs {table.required}, found {list(frame.columns)}"
        )
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for col in table.columns:
        if col.name not in frame.columns:
            continue
        where = f"{source}, column {col.name!r}"
        values = frame[col.name].reset_index(drop=True)
        if col.required and values.isna().any():
            raise ContractError(f"{where}: empty value, {bad_rows(values.isna(), values)}; expected a value")
        if col.kind == "id":
            values = _as_id(values)
        elif col.kind == "time":
            values = parse_time(values, where=where, date_format=date_format)
            check_dates(values, frame[col.name].reset_index(drop=True), where=where)
        elif col.kind in ("number", "integer"):
            values = number(values, where=where, bands=col if col.bands else None)
            check_range(values, col, where=where)
        elif col.kind == "flag":
            values = number(values, where=where)
            bad = ~values.isin([0, 1]).to_numpy()
            if bad.any():
                raise ContractError(f"{where}: {bad_rows(bad, values)}; expected 0 or 1")
            values = values.astype("int8")
        elif col.kind == "category":
            values = _as_category_text(values)
            allowed = col.allowed or (
                (NO_OFFER, *offers) if table is OFFERS and col.name == "offer" and offers else None
            )
            if allowed:
                bad = ~values.isin(allowed).fillna(False).to_numpy()
                if bad.any():
                    raise ContractError(
                        f"{where}: unknown {col.name}, {bad_rows(bad, values)}; expected one of {list(allowed)}"
                    )
        out[col.name] = values
    if table.open:
        for name in frame.columns:
            if name not in out.columns:
                out[name] = frame[name].reset_index(drop=True)
    if table is ORDERS:
        out = orders_from_lines(out, source=source)
    if table.unique and table.unique in out.columns and not all_distinct(out[table.unique]):
        dup = out[table.unique].duplicated(keep=False).to_numpy()
        if dup.any():
            raise ContractError(
                f"{source}, column {table.unique!r}: duplicate {table.unique}, "
                f"{bad_rows(dup, out[table.unique])}; expected each value once"
            )
    return out


def _as_category_text(values: pd.Series) -> pd.Series:
    """Text labels; a categorical stays categorical (cheap on large tables)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.rename_categories(lambda c: str(c).strip())
    return values.astype("string")


def _as_id(values: pd.Series) -> pd.Series:
    """Ids are strings; integral floats from CSV ('17.0') come back as '17'."""
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if (whole == np.floor(whole)).all():
            values = values.astype("Int64")
    return values.astype("string")
