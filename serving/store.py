"""The feature snapshot the service reads: each customer's latest feature row, keyed by customer_id.

The batch job writes it (``write_snapshot``) and the service reads it through
the small :class:`FeatureStore` interface. The embedded default is one SQLite
file: point lookups by primary key take microseconds and need no server. The
file is written beside its final path and renamed into place, so a reader sees
the old snapshot or the whole new one; :class:`SQLiteStore` notices the change
(inode, modification time, size) on the next lookup, checks the new file whole
and only then switches to it, so a refresh needs no restart and a bad file is
never served.

Another store (Redis, DynamoDB, a feature platform) fits behind the same three
members: ``as_of``, ``columns`` and ``lookup(ids)``. See the README.
"""

from __future__ import annotations

import json
import logging
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

log = logging.getLogger(__name__)

TABLE = "features"
META = "meta"
RESCORE = "rerun `python -m retain score --as-of DATE` to write it again"  # what to do about a bad snapshot


class StoreError(RuntimeError):
    """The snapshot is missing, unreadable or damaged: ``reason`` says what and what to run (fit to show over
    HTTP); the message puts the file's ``path`` before it."""

    def __init__(self, reason: str, path: Path | None = None):
        super().__init__(reason if path is None else f"{path}: {reason}")
        self.reason, self.path = reason, path


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
    path = Path(path)
    with atomic_path(path) as tmp:
        fill_snapshot(tmp, frames, as_of=as_of, columns=columns)
    return path


def fill_snapshot(tmp: Path, frames, *, as_of: str, columns: list[str], extra: dict[str, str] | None = None) -> None:
    """Write the snapshot into the new file ``tmp`` (``write_snapshot`` without the rename); ``extra``: more meta."""
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    tmp.unlink(missing_ok=True)
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
            **(extra or {}),
        }
        con.executemany(f"INSERT INTO {META} VALUES (?, ?)", meta.items())
        con.commit()
    finally:
        con.close()


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
    """Read side of the SQLite snapshot: the last good generation of the file, checked before it is used.

    Opening a file checks it whole (``PRAGMA quick_check`` and the row count in its meta table), so a
    truncated or garbage file is refused at once, not one request in twelve. When the batch job replaces
    the file (a new inode or modification time) the next lookup opens and checks the new one; a new file
    that fails the check is not used: the store keeps answering from the previous one (still open, so still
    readable after the rename) and says so in :attr:`problem`. When the file it reads is changed in place
    and fails the check, or a lookup meets a damaged page, nothing good is left: :attr:`broken` says why
    and lookups raise :class:`StoreError` until a good file appears.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._problem: str | None = None
        self._broken: str | None = None
        self.accept = None  # (columns) -> None, raising when a new snapshot's columns do not fit (the service's models)
        key = self._stat()
        if key is None:
            raise StoreError("no feature snapshot; run `python -m retain score --as-of DATE` to write it", self.path)
        self._con, self._meta = self._open()
        self._key = self._seen = key

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _open(self) -> tuple[sqlite3.Connection, dict]:
        """A checked connection to the file now at ``path``, with its meta; StoreError when unusable."""
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the feature snapshot ({exc}); {RESCORE}", self.path) from exc
        try:
            meta = dict(con.execute(f"SELECT key, value FROM {META}").fetchall())
            for key in ("columns", "numeric", "text"):
                meta[key] = json.loads(meta[key])
            meta["rows"] = int(meta["rows"])
            check = con.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            rows = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
            if rows != meta["rows"]:
                raise sqlite3.DatabaseError(f"{rows} rows where the meta table says {meta['rows']}")
        except (sqlite3.Error, KeyError, ValueError, TypeError) as exc:
            con.close()
            detail = f"not a readable feature snapshot ({type(exc).__name__}: {exc})"
            raise StoreError(f"{detail}; {RESCORE}", self.path) from exc
        if self.accept is not None:
            try:
                self.accept(meta["columns"])
            except Exception as exc:
                con.close()
                detail = f"the feature snapshot does not fit the models: {getattr(exc, 'reason', None) or exc}"
                raise StoreError(detail, self.path) from exc
        return con, meta

    def refresh(self) -> None:
        """Open the file at ``path`` if it changed since the last look; keep the current one if it is bad."""
        key = self._stat()
        if key == self._seen:
            return
        with self._lock:
            if key == self._seen:
                return
            self._seen = key
            if key is None:
                self._problem = "the feature snapshot file was removed; answering from the last good one"
                log.error("%s: %s", self.path, self._problem)
                return
            try:
                con, meta = self._open()
            except StoreError as exc:
                if key[0] == self._key[0]:  # changed in place: the open file is the damaged one
                    self._broken = f"the feature snapshot was changed in place and is damaged: {exc.reason}"
                else:
                    self._problem = (
                        f"a new feature snapshot was refused, answering from the last good one: {exc.reason}"
                    )
                log.error("%s: %s", self.path, self._broken or self._problem)
                return
            old, self._con, self._meta, self._key = self._con, con, meta, key
            self._problem = self._broken = None
        old.close()

    @property
    def problem(self) -> str | None:
        """Why the store answers from an older file than the one at ``path`` (None: it reads the current file)."""
        return self._problem

    @property
    def broken(self) -> str | None:
        """Why the store cannot answer at all (None: it can)."""
        return self._broken

    @property
    def as_of(self) -> str:
        return self._meta["as_of"]

    @property
    def columns(self) -> list[str]:
        return self._meta["columns"]

    @property
    def rows(self) -> int:
        return self._meta["rows"]

    def lookup(self, ids: Sequence[str]) -> tuple[list[str], dict[str, list]]:
        self.refresh()
        with self._lock:
            if self._broken:
                raise StoreError(self._broken, self.path)
            con, meta = self._con, self._meta
            wanted = list(dict.fromkeys(ids))
            found: dict[str, tuple] = {}
            try:
                for start in range(0, len(wanted), 900):  # stay under SQLite's bound-parameter limit
                    part = wanted[start : start + 900]
                    marks = ", ".join("?" * len(part))
                    for row in con.execute(f'SELECT * FROM {TABLE} WHERE "{CUSTOMER_ID}" IN ({marks})', part):
                        found[row[0]] = row
                hits = [i for i in ids if i in found]
                return hits, self._columns([found[i] for i in hits], meta)
            except (sqlite3.Error, ValueError, TypeError) as exc:
                self._broken = f"the feature snapshot is damaged ({type(exc).__name__}); {RESCORE}"
                log.error("%s: %s", self.path, self._broken)
                raise StoreError(self._broken, self.path) from exc

    @staticmethod
    def _columns(rows: list[tuple], meta: dict) -> dict:
        numeric, text = meta["numeric"], meta["text"]
        width = 8 * len(numeric)
        if any(len(r[1]) != width for r in rows):
            raise ValueError("a row's numeric features have the wrong length")
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float64).reshape(len(rows), len(numeric))
        out: dict = {name: matrix[:, j] for j, name in enumerate(numeric)}
        texts = json.loads("[" + ",".join(r[2] for r in rows) + "]")
        if any(len(t) != len(text) for t in texts):
            raise ValueError("a row's text features have the wrong length")
        out.update({name: [t[j] for t in texts] for j, name in enumerate(text)})
        return out

    def frame(self) -> pd.DataFrame:
        """Every row as a DataFrame (customer_id column first), for Spark jobs and checks."""
        self.refresh()
        with self._lock:
            rows = self._con.execute(f'SELECT * FROM {TABLE} ORDER BY "{CUSTOMER_ID}"').fetchall()
            columns = self._columns(rows, self._meta)
        data = {CUSTOMER_ID: [r[0] for r in rows]}
        data.update({c: columns[c] for c in self.columns})
        return pd.DataFrame(data)
