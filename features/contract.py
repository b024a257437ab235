"""The data contract: every input table, its columns, types and time column.

This is the one place that names columns. Other modules take names from here
(``ORDERS.ordered_at == "ordered_at"``) so a rename is one edit. Checking a
frame against it is :func:`features.validate.validate`; what a breach says
(file, column, first offending rows, what was expected) is a
:class:`ContractError` with :func:`bad_rows` in its message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

EVENT_TYPES = ("visit", "page_view", "add_to_cart", "email_sent", "email_open", "email_click")
NO_OFFER = "none"
MAX_ROWS_SHOWN = 5


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


def bad_rows(mask: np.ndarray | pd.Series, values: pd.Series) -> str:
    """The first offending rows as '(row N: value)', N counted like a file's data rows."""
    idx = np.flatnonzero(np.asarray(mask))
    shown = ", ".join(f"row {i + 1}: {values.iloc[i]!r}" for i in idx[:MAX_ROWS_SHOWN])
    more = f" and {len(idx) - MAX_ROWS_SHOWN} more" if len(idx) > MAX_ROWS_SHOWN else ""
    return f"{len(idx)} bad row(s) ({shown}{more})"
