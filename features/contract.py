"""The data contract: every input table, its columns, types and time column.

This is the one place that names columns. Other modules take names from here
(``ORDERS.ordered_at == "ordered_at"``) so a rename is one edit, and
:func:`validate` turns any DataFrame into a checked, typed table or raises a
:class:`ContractError` that names the file, the column, the first offending
rows and what was expected.

Real exports are accepted as they come: order lines are summed into orders
(:func:`orders_from_lines`), dates in one common format per column are read
without guessing day from month (:func:`parse_time`), and ``age`` or
``household_income`` given as bands (``45-54``, ``65+``) become band midpoints.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

EVENT_TYPES = ("visit", "page_view", "add_to_cart", "email_sent", "email_open", "email_click")
MAX_MAGNITUDE = 1e12  # no contract number (an amount in any currency, an age, a count) is larger; sums stay finite
EARLIEST = pd.Timestamp("1900-01-01")
LATE_YEARS = 10  # a date more than max(10 years, twice the column's spread) after its median is a typo
NO_OFFER = "none"
MAX_ROWS_SHOWN = 5

_TZ_SUFFIX = re.compile(r"\d:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})$")  # after a time: 31-05-2024 has none


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
    bands: bool = False  # a number that may come as bands ("45-54", "65+"), read as their midpoints
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
        Column("household_income", "number", required=False, min=0, bands=True),
        Column("gender", "category", required=False),
        Column("age", "number", required=False, min=0, max=130, bands=True),
    ),
    time_column="signed_up_at",
    unique=CUSTOMER_ID,
    open=True,
    doc="one row per customer; every further column is a custom attribute",
)

ORDERS = Table(
    "orders",
    (
        Column("order_id", "id", required=False, doc="order key; repeated on the lines of one order"),
        Column(CUSTOMER_ID, "id"),
        Column("ordered_at", "time"),
        Column("amount", "number", min=0, doc="paid for goods, after discount"),
        Column("discount_amount", "number", required=False, min=0),
        Column("shipping_fee", "number", required=False, min=0, doc="0 means free shipping"),
        Column("category", "category", required=False),
        Column("n_items", "number", required=False, min=0),
    ),
    time_column="ordered_at",
    unique=None,  # one row per order_id once order lines are summed: orders_from_lines checks it
    doc="sales history, one row per order (order lines are summed into orders)",
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
        return _rows(bad, values.to_frame("v"), "v")

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
    """A cutoff as a naive UTC timestamp; the cutoff instant belongs to the future."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _number(values: pd.Series, *, where: str, integer: bool, bands: Column | None = None) -> pd.Series:
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
        raise ContractError(f"{where}: wrong type, {_rows(bad, values.to_frame('v'), 'v')}; expected a number{hint}")
    out = out.astype("float64")
    huge = ~np.isfinite(out.to_numpy()) & out.notna().to_numpy() | (out.abs() > MAX_MAGNITUDE).to_numpy()
    if huge.any():
        raise ContractError(
            f"{where}: impossible value, {_rows(huge, values.astype(str).to_frame('v'), 'v')}; expected a finite number "
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


def _check_dates(values: pd.Series, raw: pd.Series, *, where: str) -> None:
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
            f"{where}: implausible date, {_rows(bad, raw.to_frame('v'), 'v')}; expected dates from "
            f"{EARLIEST:%Y-%m-%d} to {latest:%Y-%m-%d} (half the column's dates are before {median:%Y-%m-%d}); "
            "fix or drop those rows"
        )


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
    common format per column, see :func:`parse_time`). Orders given as order lines come
    back summed into orders (:func:`orders_from_lines`).
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
            values = parse_time(values, where=where, date_format=date_format)
            _check_dates(values, frame[col.name].reset_index(drop=True), where=where)
        elif col.kind in ("number", "integer"):
            values = _number(values, where=where, integer=col.kind == "integer", bands=col if col.bands else None)
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
    if table is ORDERS:
        out = orders_from_lines(out, source=source)
    if table.unique and table.unique in out.columns and not _all_distinct(out[table.unique]):
        dup = out[table.unique].duplicated(keep=False).to_numpy()
        if dup.any():
            raise ContractError(
                f"{source}, column {table.unique!r}: duplicate {table.unique}, "
                f"{_rows(dup, out, table.unique)}; expected each value once"
            )
    return out


def orders_from_lines(lines: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """One row per order from a validated orders table that may hold order lines (a row per product).

    A line's order is its ``order_id`` or, for a line without one, its (customer_id, ordered_at): a
    basket. The lines of one order become one row: ``amount``, ``discount_amount`` and ``n_items`` are
    summed (without an ``n_items`` column it is the number of lines); ``shipping_fee`` is the largest on
    the order (exports repeat the order's fee on every line, or put it on one line and 0 on the others);
    ``category`` is the most common among the lines, ties by value. An ``order_id`` on lines of
    different customers or times is refused. A table of one row per order comes back as it is.
    """
    n = len(lines)
    has_id = ORDERS.order_id in lines.columns
    if n == 0 or (has_id and lines[ORDERS.order_id].notna().all() and _all_distinct(lines[ORDERS.order_id])):
        return lines  # one row per order: the common case costs one uniqueness check
    if not has_id and _distinct_pairs(lines, CUSTOMER_ID, ORDERS.ordered_at) == n:
        return lines
    customer = pd.factorize(lines[CUSTOMER_ID])[0].astype("int64")
    moment = pd.factorize(lines[ORDERS.ordered_at])[0].astype("int64")
    basket = pd.factorize(customer * (int(moment.max()) + 1) + moment)[0]
    if has_id:
        key, ids = pd.factorize(lines[ORDERS.order_id])
        no_id = key < 0
        key[no_id] = len(ids) + pd.factorize(basket[no_id])[0]
    else:
        key = basket
    n_orders = int(key.max()) + 1
    if n_orders == n:
        return lines
    if has_id:
        _check_one_order_per_id(lines, key, basket, customer, source=source)
    groups = pd.Series(np.arange(n)).groupby(key, sort=False)  # orders in the order of their first line
    first_line = groups.min()
    first, order_key = first_line.to_numpy(), first_line.index.to_numpy()
    out = lines.iloc[first].reset_index(drop=True)
    rules = []
    for col in lines.columns:
        values = lines[col].reset_index(drop=True)
        if col in (ORDERS.amount, ORDERS.discount_amount, ORDERS.n_items):
            out[col] = values.groupby(key).sum(min_count=1).reindex(order_key).to_numpy()
            rules.append(f"{col} summed")
        elif col == ORDERS.shipping_fee:
            out[col] = values.groupby(key).max().reindex(order_key).to_numpy()
            rules.append(f"{col} the largest per order")
        elif col == ORDERS.category:
            out[col] = pd.array(_most_common(values, key).reindex(order_key), dtype="string")
            rules.append(f"{col} the most common among the lines")
    if ORDERS.n_items not in lines.columns:
        out[ORDERS.n_items] = groups.size().reindex(order_key).to_numpy().astype("float64")
        rules.append(f"{ORDERS.n_items} the number of lines")
    by = f"({CUSTOMER_ID}, {ORDERS.ordered_at})"
    if has_id:
        by = ORDERS.order_id if not no_id.any() else f"{ORDERS.order_id}, or {by} for lines without one"
    log.warning("%s: %s lines summed into %s orders by %s: %s", source, f"{n:,}", f"{n_orders:,}", by, ", ".join(rules))
    return out


def _most_common(values: pd.Series, key: np.ndarray) -> pd.Series:
    """Per order key, the most common non-empty value, ties by value (never by line order)."""
    text = values.astype("string")
    present = text.notna().to_numpy()
    codes, levels = pd.factorize(text[present], sort=True)  # code order is value order
    width = max(len(levels), 1)
    pairs, counts = np.unique(key[present].astype("int64") * width + codes, return_counts=True)
    k, c = pairs // width, pairs % width
    ranked = np.lexsort((c, -counts, k))  # per key: most lines first, then the smallest value
    k, c = k[ranked], c[ranked]
    first = np.r_[True, k[1:] != k[:-1]]
    return pd.Series(np.asarray(levels, dtype=object)[c[first]], index=k[first], dtype="string")


def _check_one_order_per_id(
    lines: pd.DataFrame, key: np.ndarray, basket: np.ndarray, customer: np.ndarray, *, source: str
) -> None:
    """An order_id repeats only on lines of one order: one customer, one ordered_at."""
    spread = pd.DataFrame({"k": key, "b": basket, "c": customer}).groupby("k").agg(["min", "max"])
    mixed = spread[("b", "min")] != spread[("b", "max")]
    if not mixed.any():
        return
    bad = mixed.reindex(key).to_numpy()
    customers = (spread[("c", "min")] != spread[("c", "max")])[mixed]
    what = "different customers" if customers.any() else f"different {ORDERS.ordered_at}"
    worst = customers.index[customers.to_numpy()][0] if customers.any() else mixed.index[mixed.to_numpy()][0]
    shown = np.flatnonzero(key == worst)[:MAX_ROWS_SHOWN]
    detail = "; ".join(
        f"row {i + 1}: {CUSTOMER_ID} {lines[CUSTOMER_ID].iloc[i]!r}, {ORDERS.ordered_at} "
        f"{lines[ORDERS.ordered_at].iloc[i]}"
        for i in shown
    )
    raise ContractError(
        f"{source}, column {ORDERS.order_id!r}: duplicate {ORDERS.order_id} on lines of {what}, "
        f"{_rows(bad, lines, ORDERS.order_id)}; {lines[ORDERS.order_id].iloc[shown[0]]!r} is on {detail}. "
        f"Expected each {ORDERS.order_id} once, or repeated only on the lines of one order (same {CUSTOMER_ID} "
        f"and {ORDERS.ordered_at}), which are summed into one order"
    )


def _distinct_pairs(frame: pd.DataFrame, *columns: str) -> int:
    """How many distinct value combinations ``columns`` hold (DuckDB: parallel, no copy of Arrow strings)."""
    with duckdb.connect() as con:
        con.register("_frame", frame[list(columns)])
        return con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(columns)} FROM _frame)").fetchone()[0]


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
