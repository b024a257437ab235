"""The data contract: every input table, its columns, types and time column.

This is the one place that names columns. Other modules take names from here
(``ORDERS.ordered_at == "ordered_at"``) so a rename is one edit, and
:func:`validate` turns any DataFrame into a checked, typed table or raises a
:class:`ContractError` that names the file, the column, the first offending
rows and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

EVENT_TYPES = ("visit", "page_view", "add_to_cart", "email_sent", "email_open", "email_click")
NO_OFFER = "none"
MAX_ROWS_SHOWN = 5

_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


class ContractError(ValueError):
    """Input that breaks the data contract; the message says where and why."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "id" | "time" | "number" | "integer" | "category" | "flag"
    required: bool = True
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    doc: str = ""


@dataclass(frozen=True)
class Table:
    """One input table. ``time_column`` says when a row became known."""

    name: str
    columns: tuple[Column, ...]
    time_column: str | None
    unique: str | None = None
    open: bool = False  # extra columns allowed (custom attributes)
    doc: str = ""
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    def __getattr__(self, item: str) -> str:
        by_name = self.__dict__.get("_by_name", {})
        if item in by_name:
            return item
        raise AttributeError(f"table {self.__dict__.get('name')!r} has no column {item!r}")

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        return self._by_name[name]


CUSTOMER_ID = "customer_id"

CUSTOMERS = Table(
    "customers",
    (
        Column(CUSTOMER_ID, "id", doc="unique customer key"),
        Column("signed_up_at", "time", required=False, doc="when the customer became known"),
        Column("region", "category", required=False),
        Column("household_income", "number", required=False, min=0),
        Column("gender", "category", required=False),
        Column("age", "number", required=False, min=0, max=130),
    ),
    time_column="signed_up_at",
    unique=CUSTOMER_ID,
    open=True,
    doc="one row per customer; every further column is a custom attribute",
)

ORDERS = Table(
    "orders",
    (
        Column("order_id", "id", required=False, doc="unique order key"),
        Column(CUSTOMER_ID, "id"),
        Column("ordered_at", "time"),
        Column("amount", "number", min=0, doc="paid for goods, after discount"),
        Column("discount_amount", "number", required=False, min=0),
        Column("shipping_fee", "number", required=False, min=0, doc="0 means free shipping"),
        Column("category", "category", required=False),
        Column("n_items", "number", required=False, min=0),
    ),
    time_column="ordered_at",
    unique="order_id",
    doc="sales history, one row per order",
)

EVENTS = Table(
    "events",
    (
        Column(CUSTOMER_ID, "id"),
        Column("occurred_at", "time"),
        Column("event_type", "category", allowed=EVENT_TYPES),
    ),
    time_column="occurred_at",
    doc="behaviour: visits, page views, carts and e-mail",
)

REVIEWS = Table(
    "reviews",
    (
        Column(CUSTOMER_ID, "id"),
        Column("created_at", "time"),
        Column("rating", "number", required=False, min=1, max=5),
        Column("sentiment", "number", required=False, min=-1, max=1),
    ),
    time_column="created_at",
    doc="product reviews with a sentiment score in [-1, 1]",
)

INTERESTS = Table(
    "interests",
    (Column(CUSTOMER_ID, "id"), Column("interest", "category")),
    time_column=None,
    doc="declared interests; static, no time column",
)

OFFERS = Table(
    "offers",
    (
        Column(CUSTOMER_ID, "id"),
        Column("sent_at", "time"),
        Column("offer", "category", doc="a catalog offer name, or 'none' for control"),
        Column("propensity", "number", required=False, min=0, max=1),
        Column("converted", "flag", doc="bought within the response window"),
        Column("revenue", "number", required=False, min=0),
    ),
    time_column="sent_at",
    doc="campaign log: who was sent what, and whether they bought",
)

TABLES: dict[str, Table] = {t.name: t for t in (CUSTOMERS, ORDERS, EVENTS, REVIEWS, INTERESTS, OFFERS)}


def _rows(mask: np.ndarray | pd.Series, frame: pd.DataFrame, col: str) -> str:
    """The first offending rows as '(row N: value)', N counted like a file's data rows."""
    idx = np.flatnonzero(np.asarray(mask))
    shown = ", ".join(f"row {i + 1}: {frame[col].iloc[i]!r}" for i in idx[:MAX_ROWS_SHOWN])
    more = f" and {len(idx) - MAX_ROWS_SHOWN} more" if len(idx) > MAX_ROWS_SHOWN else ""
    return f"{len(idx)} bad row(s) ({shown}{more})"


def parse_time(values: pd.Series, *, where: str) -> pd.Series:
    """Parse timestamps into naive UTC; refuse mixed tz-aware and naive values."""
    if pd.api.types.is_datetime64_any_dtype(values):
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.astype("datetime64[us]")
    present = values.notna()
    text = values.astype("string").str.strip()
    aware = text.str.contains(_TZ_SUFFIX, na=False).to_numpy()
    if aware.any() and not aware[present.to_numpy()].all():
        naive = present.to_numpy() & ~aware
        raise ContractError(
            f"{where}: mixed time-zone-aware and naive timestamps; "
            f"{_rows(naive, values.to_frame('v'), 'v')} have no zone while others do. "
            "Expected all values with a zone (e.g. 2024-05-01T10:00:00+02:00) or all without."
        )
    parsed = pd.to_datetime(text, errors="coerce", utc=bool(aware.any()), format="mixed")
    bad = present.to_numpy() & parsed.isna().to_numpy()
    if bad.any():
        raise ContractError(
            f"{where}: unparseable date, {_rows(bad, values.to_frame('v'), 'v')}; "
            "expected an ISO date or timestamp such as 2024-05-01 or 2024-05-01T10:00:00"
        )
    if aware.any():
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[us]")


def parse_cutoff(value) -> pd.Timestamp:
    """A cutoff as a naive UTC timestamp; the cutoff instant belongs to the future."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _number(values: pd.Series, *, where: str, integer: bool) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        values = values.astype("int8")
    out = pd.to_numeric(values, errors="coerce")
    bad = values.notna().to_numpy() & out.isna().to_numpy()
    if bad.any():
        raise ContractError(f"{where}: wrong type, {_rows(bad, values.to_frame('v'), 'v')}; expected a number")
    return out.astype("float64")


def _check_range(values: pd.Series, col: Column, *, where: str) -> None:
    for bound, op, word in ((col.min, np.less, ">="), (col.max, np.greater, "<=")):
        if bound is None:
            continue
        bad = op(values.to_numpy(), bound) & values.notna().to_numpy()
        if bad.any():
            adjective = "negative" if bound == 0 and word == ">=" else "out of range"
            raise ContractError(
                f"{where}: {adjective} value, {_rows(bad, values.to_frame('v'), 'v')}; expected {word} {bound:g}"
            )


def validate(
    table: Table | str,
    frame: pd.DataFrame,
    *,
    source: str | None = None,
    offers: tuple[str, ...] = (),
    allow_empty: bool = False,
) -> pd.DataFrame:
    """Check and type one table; return a new frame, never modify the input.

    ``offers`` is the catalog's offer names; the control name ``none`` is always allowed.
    An empty table is an error (a user's empty file is a mistake) unless ``allow_empty``:
    a slice of the customers (a Spark partition) may hold no rows of a table.
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
            raise ContractError(
                f"{where}: empty value, {_rows(values.isna(), values.to_frame('v'), 'v')}; expected a value"
            )
        if col.kind == "id":
            values = _as_id(values)
        elif col.kind == "time":
            values = parse_time(values, where=where)
        elif col.kind in ("number", "integer"):
            values = _number(values, where=where, integer=col.kind == "integer")
            _check_range(values, col, where=where)
        elif col.kind == "flag":
            values = _number(values, where=where, integer=True)
            bad = ~values.isin([0, 1]).to_numpy()
            if bad.any():
                raise ContractError(f"{where}: {_rows(bad, values.to_frame('v'), 'v')}; expected 0 or 1")
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
                        f"{where}: unknown {col.name}, {_rows(bad, values.to_frame('v'), 'v')}; "
                        f"expected one of {list(allowed)}"
                    )
        out[col.name] = values
    if table.open:
        for name in frame.columns:
            if name not in out.columns:
                out[name] = frame[name].reset_index(drop=True)
    if table.unique and table.unique in out.columns and not _all_distinct(out[table.unique]):
        dup = out[table.unique].duplicated(keep=False).to_numpy()
        if dup.any():
            raise ContractError(
                f"{source}, column {table.unique!r}: duplicate {table.unique}, "
                f"{_rows(dup, out, table.unique)}; expected each value once"
            )
    return out


def _all_distinct(values: pd.Series) -> bool:
    """Cheap uniqueness check in Arrow; the slow pandas path runs only to report duplicates."""
    return len(pc.unique(pa.array(values, from_pandas=True)).drop_null()) == values.notna().sum()


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
