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
    """Write feature rows (one DataFrame or an iterable of chunks, customer_id column or index) atomically.

    One row per customer: the numeric features packed as float64 bytes, the text
    features as a JSON list, so a lookup of 100 customers reads 100 short rows.
    """
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.unlink()
        con = sqlite3.connect(tmp)
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            con.execute(f'CREATE TABLE {TABLE} ("{CUSTOMER_ID}" TEXT PRIMARY KEY, num BLOB, txt TEXT)')
            numeric: list[str] | None = None
            rows = 0
            for frame in frames:
                if CUSTOMER_ID not in frame.columns:
                    frame = frame.reset_index()
                if numeric is None:
                    numeric = [c for c in columns if _is_number(frame[c])]
                    text = [c for c in columns if c not in numeric]
                con.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?)", _rows(frame, numeric, text))
                rows += len(frame)
            if numeric is None:
                raise StoreError("no feature rows to write")
            con.execute(f"CREATE TABLE {META} (key TEXT PRIMARY KEY, value TEXT)")
            meta = {
                "as_of": as_of,
                "columns": json.dumps(columns),
                "numeric": json.dumps(numeric),
                "text": json.dumps(text),
                "rows": str(rows),
            }
            con.executemany(f"INSERT INTO {META} VALUES (?, ?)", meta.items())
            con.commit()
        finally:
            con.close()
    return path


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) or values.isna().all()


def _rows(frame: pd.DataFrame, numeric: list[str], text: list[str]):
    """(customer_id, float64 bytes, JSON list of texts) per row; NaN/NA text as null."""
    ids = frame[CUSTOMER_ID].astype(str).to_numpy()
    matrix = np.ascontiguousarray(
        np.column_stack([pd.to_numeric(frame[c]).to_numpy(dtype=np.float64, na_value=np.nan) for c in numeric])
        if numeric
        else np.empty((len(frame), 0))
    )
    texts = [frame[c].astype(object).where(frame[c].notna(), None).to_numpy() for c in text]
    for i in range(len(frame)):
        yield ids[i], matrix[i].tobytes(), json.dumps([None if t[i] is None else str(t[i]) for t in texts])


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
                self._meta = self._read_meta(con)
                self._meta_key = key
        return con

    def _read_meta(self, con: sqlite3.Connection) -> dict:
        try:
            meta = dict(con.execute(f"SELECT key, value FROM {META}").fetchall())
            for key in ("columns", "numeric", "text"):
                meta[key] = json.loads(meta[key])
        except (sqlite3.DatabaseError, KeyError) as exc:
            raise StoreError(
                f"{self.path}: not a feature snapshot of this version ({exc}); rerun retain score"
            ) from exc
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
        meta = self._meta
        wanted = list(dict.fromkeys(ids))
        found: dict[str, tuple] = {}
        for start in range(0, len(wanted), 900):  # stay under SQLite's bound-parameter limit
            part = wanted[start : start + 900]
            marks = ", ".join("?" * len(part))
            for row in con.execute(f'SELECT * FROM {TABLE} WHERE "{CUSTOMER_ID}" IN ({marks})', part):
                found[row[0]] = row
        hits = [i for i in ids if i in found]
        return hits, self._columns([found[i] for i in hits], meta)

    @staticmethod
    def _columns(rows: list[tuple], meta: dict) -> dict:
        numeric, text = meta["numeric"], meta["text"]
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float64).reshape(len(rows), len(numeric))
        out: dict = {name: matrix[:, j] for j, name in enumerate(numeric)}
        texts = json.loads("[" + ",".join(r[2] for r in rows) + "]")
        out.update({name: [t[j] for t in texts] for j, name in enumerate(text)})
        return out

    def frame(self) -> pd.DataFrame:
        """Every row as a DataFrame (customer_id column first), for Spark jobs and checks."""
        con = self._connect()
        rows = con.execute(f'SELECT * FROM {TABLE} ORDER BY "{CUSTOMER_ID}"').fetchall()
        columns = self._columns(rows, self._meta)
        data = {CUSTOMER_ID: [r[0] for r in rows]}
        data.update({c: columns[c] for c in self.columns})
        return pd.DataFrame(data)
