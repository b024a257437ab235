"""The tables as of a cutoff: only rows known strictly before it.

Builders never see raw tables. They get a :class:`Snapshot` whose DuckDB views
(``orders``, ``events``, ...) are already cut at the cutoff, so point-in-time
correctness holds by construction: the cutoff instant belongs to the future.

For speed the views carry ``cid``, a dense integer customer key, instead of
the string ``customer_id``: grouping, sorting and joining on integers is several
times faster. The encoding (``Tables.customer_codes``) is done once per
:class:`Tables` and reused for every cutoff; ``population`` maps ``cid`` back
to ``customer_id``.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import CUSTOMER_ID, CUSTOMERS, ORDERS, TABLES, parse_cutoff
from features.sources import Tables

KEY = "cid"
_SQL_TYPES = {
    "id": "VARCHAR",
    "time": "TIMESTAMP",
    "number": "DOUBLE",
    "integer": "BIGINT",
    "category": "VARCHAR",
    "flag": "TINYINT",
}


def _keyed(tables: Tables, name: str) -> pa.Table | pd.DataFrame:
    """A table with ``cid`` instead of ``customer_id``; rows of unknown customers left out."""
    frame = getattr(tables, name)
    codes = tables.customer_codes(name)
    if name == CUSTOMERS.name:  # small, and custom attributes may hold anything: stay pandas
        return frame.assign(**{KEY: codes.to_numpy()})
    table = pa.Table.from_pandas(frame.drop(columns=CUSTOMER_ID), preserve_index=False).append_column(KEY, codes)
    return table.filter(pc.is_valid(codes)) if codes.null_count else table


class Snapshot:
    """Read-only view of the tables strictly before ``cutoff``.

    ``sql`` runs a query over the cut views (keyed by ``cid``) plus
    ``population`` (``cid``, ``customer_id``: one row per customer known before
    the cutoff); ``frame`` returns a cut table as pandas with ``customer_id``.
    """

    def __init__(self, tables: Tables, *, cutoff):
        self.cutoff = parse_cutoff(cutoff)
        self._present = set(tables.present())
        self._columns = {name: list(frame.columns) for name, frame in tables.present().items()}
        ids = tables.customer_ids()
        self._con = duckdb.connect()
        self._con.register(
            "_ids", pa.table({KEY: np.arange(len(ids), dtype=np.int32), CUSTOMER_ID: pa.array(ids, type=pa.string())})
        )
        cut = self.sql_cutoff
        for name, table in TABLES.items():
            if name not in self._present:  # absent table: an empty view with the contract's columns
                cols = ", ".join(
                    f"NULL::{_SQL_TYPES[c.kind]} AS {c.name}"
                    for c in table.columns
                    if c.name != CUSTOMER_ID or name == CUSTOMERS.name
                )
                self._con.execute(f"CREATE VIEW {name} AS SELECT NULL::INTEGER AS {KEY}, {cols} WHERE false")
                continue
            self._con.register(f"_raw_{name}", _keyed(tables, name))
            have = self._columns[name]
            extra = "".join(f", NULL::{_SQL_TYPES[c.kind]} AS {c.name}" for c in table.columns if c.name not in have)
            where = ""
            if table.time_column and table.time_column in have:
                where = f"WHERE {table.time_column} < {cut}"
                if name == CUSTOMERS.name:  # a customer without a sign-up date is known
                    where += f" OR {table.time_column} IS NULL"
            self._con.execute(f"CREATE VIEW {name} AS SELECT *{extra} FROM _raw_{name} {where}")
        self._con.execute(
            f"CREATE TEMP TABLE population AS SELECT k.{KEY}, i.{CUSTOMER_ID} FROM "
            f"(SELECT {KEY} FROM {CUSTOMERS.name} UNION SELECT {KEY} FROM {ORDERS.name}) k "
            f"JOIN _ids i USING ({KEY}) ORDER BY i.{CUSTOMER_ID}"
        )

    @property
    def sql_cutoff(self) -> str:
        """The cutoff as a SQL literal, for window arithmetic in builders."""
        return f"TIMESTAMP '{self.cutoff.isoformat(sep=' ')}'"

    def has(self, name: str) -> bool:
        return name in self._present

    def columns(self, name: str) -> list[str]:
        return self._columns.get(name, [])

    def sql(self, query: str) -> pd.DataFrame:
        return self._con.execute(query).df()

    def frame(self, name: str) -> pd.DataFrame:
        """A cut table as pandas, keyed by customer_id like the input."""
        return self.sql(
            f"SELECT i.{CUSTOMER_ID}, t.* EXCLUDE ({KEY}{', ' + CUSTOMER_ID if name == CUSTOMERS.name else ''}) "
            f"FROM {name} t JOIN _ids i USING ({KEY})"
        )

    def population(self) -> pd.Index:
        ids = self.sql(f"SELECT {CUSTOMER_ID} FROM population ORDER BY {CUSTOMER_ID}")[CUSTOMER_ID]
        return pd.Index(ids.astype("string"), name=CUSTOMER_ID)

    def close(self) -> None:
        self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
