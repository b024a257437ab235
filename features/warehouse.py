"""The validated tables loaded once into DuckDB, keyed by a dense integer customer id.

Hashing string customer ids is the costliest step on large tables, so it is
done once per :class:`~features.sources.Tables`, in DuckDB's parallel hash join,
and shared by the orphan check and every snapshot. Grouping, sorting and joining
on the integer ``cid`` is then several times faster than on strings.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from features.contract import CUSTOMER_ID, CUSTOMERS, EVENT_TYPES, EVENTS, ORDERS

KEY = "cid"
_CACHE = "_warehouse"


class Warehouse:
    """An in-memory DuckDB database: ``_ids`` (cid, customer_id) and ``k_<table>`` with cid for each table.

    ``_ids`` holds the known customers (``Tables.customer_ids``) and, without a customers table, those
    who only have events. Rows whose customer is unknown keep a NULL cid (``orphans`` counts them).
    Customers keep only the columns a population needs; custom attributes stay
    in pandas, where any type is allowed.
    """

    def __init__(self, tables):
        self.con = duckdb.connect()
        ids = tables.customer_ids()
        self.con.register(
            "_ids_arrow",
            pa.table({KEY: np.arange(len(ids), dtype=np.int32), CUSTOMER_ID: pa.array(ids, type=pa.large_string())}),
        )
        self.con.execute("CREATE TABLE _ids AS SELECT * FROM _ids_arrow")
        self.con.unregister("_ids_arrow")
        if tables.customers is None and tables.events is not None:  # lifecycle knows cart users who never bought
            self.con.register("_events", tables.events[[CUSTOMER_ID]])
            self.con.execute(
                f"INSERT INTO _ids SELECT ({len(ids)} + row_number() OVER (ORDER BY {CUSTOMER_ID}) - 1)::INTEGER, "
                f"{CUSTOMER_ID} FROM (SELECT DISTINCT {CUSTOMER_ID} FROM _events "
                f"WHERE {CUSTOMER_ID} NOT IN (SELECT {CUSTOMER_ID} FROM _ids))"
            )
            self.con.unregister("_events")
        kinds = ", ".join(f"'{k}'" for k in EVENT_TYPES)
        self.con.execute(f"CREATE TYPE event_kind AS ENUM ({kinds})")  # integer compares in builders
        for name, frame in tables.present().items():
            cast = ""
            if name == EVENTS.name:
                cast = f" REPLACE (r.{EVENTS.event_type}::VARCHAR::event_kind AS {EVENTS.event_type})"
            if name == CUSTOMERS.name:
                keep = [c for c in (CUSTOMER_ID, CUSTOMERS.signed_up_at) if c in frame.columns]
                frame = frame[keep]
            drop = CUSTOMER_ID
            if name == ORDERS.name and ORDERS.order_id in frame.columns:
                drop += f", {ORDERS.order_id}"  # no builder needs it, and 20 M strings cost memory
            self.con.register("_raw", frame)
            self.con.execute(
                f"CREATE TABLE k_{name} AS SELECT i.{KEY}, r.* EXCLUDE ({drop}){cast} "
                f"FROM _raw r LEFT JOIN _ids i USING ({CUSTOMER_ID})"
            )
            self.con.unregister("_raw")

    def orphans(self, name: str) -> int:
        """Rows of a table whose customer is not among the known customers."""
        return self.con.execute(f"SELECT count(*) FROM k_{name} WHERE {KEY} IS NULL").fetchone()[0]

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own (temporary views stay private) over the shared tables."""
        return self.con.cursor()


def warehouse(tables) -> Warehouse:
    """The Warehouse of these Tables, built on first use and cached on the (frozen) object."""
    cached = tables.__dict__.get(_CACHE)
    if cached is None:
        cached = Warehouse(tables)
        tables.__dict__[_CACHE] = cached
    return cached
