"""The feature snapshot the service reads: each customer's latest feature row, keyed by customer_id.

The batch job writes it (``write_snapshot``) and the service reads it through
the small :class:`FeatureStore` interface. The embedded default is one SQLite
file: point lookups by primary key take microseconds and need no server. The
file is written beside its final path and renamed into place, so a reader sees
the old snapshot or the whole new one; :class:`SQLiteStore` notices the rename
(inode change) on the next lookup and reopens, so a refresh needs no restart.

Another store (Redis, DynamoDB, a feature platform) fits behind the same three
members: ``as_of``, ``columns`` and ``lookup(ids)``. See the README.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from features.contract import CUSTOMER_ID
from features.io import atomic_path

TABLE = "features"
META = "meta"


class StoreError(RuntimeError):
    """The snapshot is missing or unreadable; the message says which file and what to run."""


class FeatureStore(Protocol):
    """What the service needs from a feature snapshot."""

    @property
    def as_of(self) -> str: ...

    @property
    def columns(self) -> list[str]: ...

    def lookup(self, ids: Sequence[str]) -> tuple[list[str], dict[str, list]]:
        """(found ids in request order, feature name -> values for those ids); unknown ids are skipped."""
        ...


def write_snapshot(frames, path: str | Path, *, as_of: str, columns: list[str]) -> Path:
    """Write feature rows (one DataFrame or an iterable of chunks, customer_id column or index) atomically."""
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.unlink()
        con = sqlite3.connect(tmp)
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            cols = ", ".join(f'"{c}"' for c in columns)
            create, rows = False, 0
            for frame in frames:
                if CUSTOMER_ID not in frame.columns:
                    frame = frame.reset_index()
                part = frame[[CUSTOMER_ID, *columns]]
                if not create:
                    types = [_sql_type(part[c]) for c in columns]
                    defs = ", ".join(f'"{c}" {t}' for c, t in zip(columns, types, strict=True))
                    con.execute(f'CREATE TABLE {TABLE} ("{CUSTOMER_ID}" TEXT PRIMARY KEY, {defs})')
                    create = True
                marks = ", ".join("?" * (len(columns) + 1))
                con.executemany(f'INSERT INTO {TABLE} ("{CUSTOMER_ID}", {cols}) VALUES ({marks})', _rows(part))
                rows += len(part)
            if not create:
                raise StoreError("no feature rows to write")
            con.execute(f"CREATE TABLE {META} (key TEXT PRIMARY KEY, value TEXT)")
            meta = {"as_of": as_of, "columns": json.dumps(columns), "rows": str(rows)}
            con.executemany(f"INSERT INTO {META} VALUES (?, ?)", meta.items())
            con.commit()
        finally:
            con.close()
    return path


def _sql_type(values: pd.Series) -> str:
    return "REAL" if pd.api.types.is_numeric_dtype(values) else "TEXT"


def _rows(frame: pd.DataFrame):
    """Rows as Python tuples with NaN/NA as NULL."""
    cols = []
    for c in frame.columns:
        v = frame[c]
        if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
            arr = v.to_numpy(dtype=np.float64, na_value=np.nan).astype(object)
            arr[pd.isna(arr)] = None
        else:
            arr = v.astype(object).where(v.notna(), None).to_numpy()
            arr = np.array([x if x is None else str(x) for x in arr], dtype=object)
        cols.append(arr)
    return zip(*cols, strict=True)


class SQLiteStore:
    """Read side of the SQLite snapshot; one connection per thread, reopened when the file is replaced."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        self._meta_key = None
        self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            st = os.stat(self.path)
        except FileNotFoundError as exc:
            raise StoreError(
                f"{self.path}: no feature snapshot; run `python -m retain score --as-of DATE` to write it"
            ) from exc
        key = (st.st_ino, st.st_mtime_ns)
        con = getattr(self._local, "con", None)
        if con is None or self._local.key != key:
            if con is not None:
                con.close()
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.con, self._local.key = con, key
            if self._meta_key != key:
                self._meta_key = key
                self._meta = self._read_meta(con)
        return con

    def _read_meta(self, con: sqlite3.Connection) -> dict:
        try:
            meta = dict(con.execute(f"SELECT key, value FROM {META}").fetchall())
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a feature snapshot ({exc})") from exc
        meta["columns"] = json.loads(meta["columns"])
        return meta

    @property
    def as_of(self) -> str:
        return self._meta["as_of"]

    @property
    def columns(self) -> list[str]:
        return self._meta["columns"]

    @property
    def rows(self) -> int:
        return int(self._meta["rows"])

    def lookup(self, ids: Sequence[str]) -> tuple[list[str], dict[str, list]]:
        con = self._connect()
        wanted = list(dict.fromkeys(ids))
        found: dict[str, tuple] = {}
        for start in range(0, len(wanted), 900):  # stay under SQLite's bound-parameter limit
            part = wanted[start : start + 900]
            marks = ", ".join("?" * len(part))
            cur = con.execute(f'SELECT * FROM {TABLE} WHERE "{CUSTOMER_ID}" IN ({marks})', part)
            names = [d[0] for d in cur.description]
            for row in cur.fetchall():
                found[row[0]] = row
        hits = [i for i in ids if i in found]
        columns = {name: [found[i][j] for i in hits] for j, name in enumerate(names) if j > 0}
        return hits, columns
