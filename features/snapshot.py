"""The tables as of a cutoff: only rows known strictly before it.

Builders never see raw tables. They get a :class:`Snapshot` whose DuckDB views
(``orders``, ``events``, ...) are already cut at the cutoff, so point-in-time
correctness holds by construction: the cutoff instant belongs to the future.
Everything that cuts at an instant (features, labels, lifecycle, KPIs, cohorts)
goes through a Snapshot; outcomes read the future only through ``ahead``.

The views carry ``cid``, the dense integer customer key of the
:mod:`~features.warehouse` (built once per Tables, shared by every cutoff),
instead of the string ``customer_id``; ``population`` maps one to the other.
"""

from __future__ import annotations

import pandas as pd

from features.contract import CUSTOMER_ID, CUSTOMERS, ORDERS, TABLES
from features.dates import parse_cutoff
from features.sources import Tables
from features.warehouse import KEY, warehouse

__all__ = ["KEY", "Snapshot"]

_SQL_TYPES = {
    "id": "VARCHAR",
    "time": "TIMESTAMP",
    "number": "DOUBLE",
    "integer": "BIGINT",
    "category": "VARCHAR",
    "flag": "TINYINT",
}
_PANDAS_TYPES = {"id": "string", "time": "datetime64[us]", "number": "float64", "category": "string"}


class Snapshot:
    """Read-only view of the tables strictly before ``cutoff``.

    ``sql`` runs a query over the cut views (keyed by ``cid``) plus
    ``population`` (``cid``, ``customer_id``: one row per customer known before
    the cutoff); ``frame`` returns a cut table as pandas with ``customer_id``;
    ``ahead`` the rows in a window after the cutoff, for outcomes.
    ``vocabulary`` holds the builders' population-wide choices (``learned``):
    learned from this snapshot, or given when it holds only some customers.
    """

    def __init__(self, tables: Tables, *, cutoff, vocabulary: dict | None = None):
        self.cutoff = parse_cutoff(cutoff)
        self.vocabulary = {} if vocabulary is None else dict(vocabulary)
        self._given = vocabulary is not None
        self._memo: dict = {}
        self._tables = tables
        self._present = set(tables.present())
        self._con = warehouse(tables).cursor()
        self._rows: dict[str, str] = {}  # per table: its rows of known customers, every contract column
        for name, table in TABLES.items():
            if name not in self._present:  # absent table: an empty view with the contract's columns
                cols = ", ".join(
                    f"NULL::{_SQL_TYPES[c.kind]} AS {c.name}" for c in table.columns if c.name != CUSTOMER_ID
                )
                self._con.execute(f"CREATE TEMP VIEW {name} AS SELECT NULL::INTEGER AS {KEY}, {cols} WHERE false")
                continue
            have = self.columns(name)
            extra = "".join(
                f", NULL::{_SQL_TYPES[c.kind]} AS {c.name}"
                for c in table.columns
                if c.name not in have and c.name != CUSTOMER_ID and name != CUSTOMERS.name
            )
            self._rows[name] = f"SELECT *{extra} FROM k_{name} WHERE {KEY} IS NOT NULL"
            where = ""
            if table.time_column and table.time_column in have:
                null_ok = f" OR {table.time_column} IS NULL" if name == CUSTOMERS.name else ""
                where = f" AND ({table.time_column} < {self.sql_cutoff}{null_ok})"  # no sign-up date: known
            self._con.execute(f"CREATE TEMP VIEW {name} AS {self._rows[name]}{where}")
        self._con.execute(
            f"CREATE TEMP TABLE population AS SELECT k.{KEY}, i.{CUSTOMER_ID} FROM "
            f"(SELECT {KEY} FROM {CUSTOMERS.name} UNION SELECT {KEY} FROM {ORDERS.name}) k "
            f"JOIN _ids i USING ({KEY}) ORDER BY i.{CUSTOMER_ID}"
        )

    def ahead(self, name: str, *, until: pd.Timestamp) -> str:
        """The rows of ``name`` in [cutoff, until) as a SQL subquery keyed by cid, like the views: the future
        that labels and period KPIs look at. The cutoff instant is in it, ``until`` is not."""
        time_column = TABLES[name].time_column
        if time_column is None:
            raise ValueError(f"the {name} table has no time column: it has no rows after a cutoff")
        if name not in self._rows or time_column not in self.columns(name):
            return f"(SELECT * FROM {name} WHERE false)"  # absent, or undated customers: all known already
        return f"({self._rows[name]} AND {time_column} >= {self.sql_cutoff} AND {time_column} < {_sql_time(until)})"

    def memo(self, key: str, compute):
        """``compute()`` once per snapshot: for a query a builder's ``learn`` and ``build`` both need."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def learned(self, builder: str, learn, config):
        """A builder's population-wide choices: from the given vocabulary, else ``learn(self, config)`` once."""
        if builder not in self.vocabulary:
            if self._given:
                raise KeyError(f"the vocabulary has no choices for {builder}; learn it with learn_vocabulary")
            self.vocabulary[builder] = learn(self, config)
        return self.vocabulary[builder]

    @property
    def sql_cutoff(self) -> str:
        """The cutoff as a SQL literal, for window arithmetic in builders."""
        return _sql_time(self.cutoff)

    def has(self, name: str) -> bool:
        return name in self._present

    def columns(self, name: str) -> list[str]:
        frame = getattr(self._tables, name)
        return list(frame.columns) if frame is not None else []

    def sql(self, query: str, **frames: pd.DataFrame) -> pd.DataFrame:
        """``query`` over the cut views, ``population``, ``_ids`` (cid, customer_id) and ``frames`` (pandas,
        by name, read in place: a customers attribute a query groups by)."""
        for frame_name, frame in frames.items():
            self._con.register(frame_name, frame)
        try:
            return self._con.execute(query).df()
        finally:
            for frame_name in frames:
                self._con.unregister(frame_name)

    def frame(self, name: str) -> pd.DataFrame:
        """A cut table as pandas, keyed by customer_id like the input (customers with every attribute)."""
        if name == CUSTOMERS.name:
            customers = self._tables.customers
            if customers is None:
                customers = pd.DataFrame({c.name: pd.Series(dtype=_PANDAS_TYPES[c.kind]) for c in CUSTOMERS.columns})
            known = pd.Series(True, index=customers.index)
            if CUSTOMERS.signed_up_at in customers.columns:
                at = customers[CUSTOMERS.signed_up_at]
                known = at.isna() | (at < self.cutoff)
            out = customers.loc[known].reset_index(drop=True)
            for col in CUSTOMERS.columns:
                if col.name not in out.columns:
                    out[col.name] = pd.Series(index=out.index, dtype=_PANDAS_TYPES[col.kind])
            return out
        return self.sql(f"SELECT i.{CUSTOMER_ID}, t.* EXCLUDE ({KEY}) FROM {name} t JOIN _ids i USING ({KEY})")

    def population(self, *, key: bool = False) -> pd.Index:
        """Customers known before the cutoff, sorted by customer_id; ``key=True`` gives their cid instead."""
        col = KEY if key else CUSTOMER_ID
        ids = self.sql(f"SELECT {col} FROM population ORDER BY {CUSTOMER_ID}")[col]
        return pd.Index(ids if key else ids.astype("string"), name=col)

    def close(self) -> None:
        self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _sql_time(at: pd.Timestamp) -> str:
    return f"TIMESTAMP '{at.isoformat(sep=' ')}'"
