"""The tables as of a cutoff: only rows known strictly before it.

Builders never see raw tables. They get a :class:`Snapshot` whose DuckDB views
(``orders``, ``events``, ...) are already cut at the cutoff, so point-in-time
correctness holds by construction: the cutoff instant belongs to the future.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from features.contract import CUSTOMER_ID, CUSTOMERS, ORDERS, TABLES, parse_cutoff
from features.sources import Tables

_SQL_TYPES = {
    "id": "VARCHAR",
    "time": "TIMESTAMP",
    "number": "DOUBLE",
    "integer": "BIGINT",
    "category": "VARCHAR",
    "flag": "TINYINT",
}


class Snapshot:
    """Read-only view of the tables strictly before ``cutoff``.

    ``sql`` runs a query over the cut views plus ``population`` (one row per
    customer known before the cutoff); ``frame`` returns a cut table as pandas.
    """

    def __init__(self, tables: Tables, *, cutoff):
        self.cutoff = parse_cutoff(cutoff)
        self._con = duckdb.connect()
        self._tables = tables.present()
        cut = f"TIMESTAMP '{self.cutoff.isoformat(sep=' ')}'"
        for name, table in TABLES.items():
            frame = self._tables.get(name)
            if frame is None:  # absent table: an empty view with the contract's columns
                cols = ", ".join(f"NULL::{_SQL_TYPES[c.kind]} AS {c.name}" for c in table.columns)
                self._con.execute(f"CREATE VIEW {name} AS SELECT {cols} WHERE false")
                continue
            self._con.register(f"_raw_{name}", frame)
            absent = [c for c in table.columns if c.name not in frame.columns]
            extra = "".join(f", NULL::{_SQL_TYPES[c.kind]} AS {c.name}" for c in absent)
            where = ""
            if table.time_column and table.time_column in frame.columns:
                where = f"WHERE {table.time_column} < {cut}"
                if name == CUSTOMERS.name:  # a customer without a sign-up date is known
                    where += f" OR {table.time_column} IS NULL"
            self._con.execute(f"CREATE VIEW {name} AS SELECT *{extra} FROM _raw_{name} {where}")
        self._con.execute(
            f"CREATE VIEW population AS SELECT DISTINCT {CUSTOMER_ID} FROM "
            f"(SELECT {CUSTOMER_ID} FROM {CUSTOMERS.name} UNION ALL SELECT {CUSTOMER_ID} FROM {ORDERS.name})"
        )

    def has(self, name: str) -> bool:
        return name in self._tables

    def columns(self, name: str) -> list[str]:
        return list(self._tables[name].columns) if name in self._tables else []

    def sql(self, query: str) -> pd.DataFrame:
        return self._con.execute(query).df()

    def frame(self, name: str) -> pd.DataFrame:
        return self.sql(f"SELECT * FROM {name}")

    def population(self) -> pd.Index:
        ids = self.sql(f"SELECT {CUSTOMER_ID} FROM population ORDER BY {CUSTOMER_ID}")[CUSTOMER_ID]
        return pd.Index(ids.astype("string"), name=CUSTOMER_ID)

    def close(self) -> None:
        self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
