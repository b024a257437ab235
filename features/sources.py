"""Read a data directory (or DataFrames) into validated contract tables.

A data directory holds one file per table, CSV or Parquet, named after the
table (``orders.csv``, ``events.parquet``). Every table is optional; the
customers come from the customers table or, failing that, from the orders.
"""

from __future__ import annotations

import codecs
import csv
import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import CUSTOMER_ID, TABLES, ContractError
from features.validate import validate
from features.warehouse import warehouse

log = logging.getLogger(__name__)

ORPHAN_POLICIES = ("error", "drop")


@dataclass(frozen=True)
class Tables:
    """The validated input tables; an absent table is None."""

    customers: pd.DataFrame | None = None
    orders: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    reviews: pd.DataFrame | None = None
    interests: pd.DataFrame | None = None
    offers: pd.DataFrame | None = None

    def present(self) -> dict[str, pd.DataFrame]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def customer_ids(self) -> pd.Index:
        """Every known customer: the customers table, else the ids in orders."""
        if self.customers is not None:
            return pd.Index(self.customers[CUSTOMER_ID], name=CUSTOMER_ID)
        if self.orders is not None:
            return pd.Index(self.orders[CUSTOMER_ID].unique(), name=CUSTOMER_ID)
        raise ContractError("no customers: provide a customers table or an orders table")


def _read_file(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    """One table file as pandas.

    CSV as shops export it, in ``encoding`` (``encoding`` in configs/features.yaml): a UTF-8 byte-order mark is
    skipped, quoted fields are unquoted,
    cells lose leading blanks (' 17' is customer '17'), and the contract's id, category and
    time columns stay text as written (customer '00123' keeps its zeros, region '01' stays '01').
    """
    if path.suffix == ".parquet":
        try:
            return pq.read_table(path).to_pandas(self_destruct=True, split_blocks=True)  # no second copy at peak
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise ContractError(
                f"{path}: not a readable Parquet file ({type(exc).__name__}: {_first_line(exc)}); expected a "
                "complete Parquet file: write it again, or export the table as CSV"
            ) from exc
    text = {c.name for c in TABLES[path.stem].columns if c.kind in ("id", "category", "time")}
    utf8 = codecs.lookup(encoding).name == "utf-8"
    codec, shown = ("utf-8-sig", "UTF-8") if utf8 else (encoding, encoding)
    options = {"encoding": codec, "skipinitialspace": True}
    try:
        header = pd.read_csv(path, nrows=0, **options).columns
        dtype = {name: "string" for name in header if str(name).strip() in text}
        return pd.read_csv(path, dtype=dtype, low_memory=False, **options)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except UnicodeDecodeError as exc:
        raise ContractError(
            f"{path}: not {shown} text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r}); "
            f"expected a {shown} CSV file: save or export it as {shown}, or declare its encoding in "
            "configs/features.yaml, e.g. encoding: latin-1"
        ) from exc
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        raise ContractError(
            f"{path}: not a readable CSV file ({_first_line(exc)}); expected UTF-8 text with one header line and "
            "comma-separated rows, every quote closed"
        ) from exc
    except OSError as exc:
        raise ContractError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def find_table_files(data_dir: Path) -> dict[str, Path]:
    """Map table name -> file; refuse two files for one table."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ContractError(f"{data_dir}: not a directory; expected a folder with one CSV or Parquet file per table")
    found: dict[str, Path] = {}
    for name in TABLES:
        candidates = [p for p in (data_dir / f"{name}.csv", data_dir / f"{name}.parquet") if p.exists()]
        if len(candidates) > 1:
            raise ContractError(
                f"{data_dir}: both {candidates[0].name} and {candidates[1].name}; keep one file per table"
            )
        if candidates:
            found[name] = candidates[0]
    return found


def load_tables(
    data_dir: str | Path,
    *,
    offers: tuple[str, ...] = (),
    orphans: str = "error",
    date_format: str | None = None,
    encoding: str = "utf-8",
) -> Tables:
    """Read and validate every table file found in ``data_dir`` (``date_format``: see ``validate``; ``encoding``:
    of the CSV files)."""
    files = find_table_files(Path(data_dir))
    if not files:
        raise ContractError(
            f"{data_dir}: no table files found; expected e.g. orders.csv or customers.parquet "
            f"(tables: {', '.join(TABLES)})"
        )
    # each raw file is dropped as soon as it is validated, so two copies of a big table never coexist
    checked = {
        name: validate(
            TABLES[name], _read_file(path, encoding), source=str(path), offers=offers, date_format=date_format
        )
        for name, path in files.items()
    }
    return _assemble(checked, {n: str(p) for n, p in files.items()}, orphans)


def check_tables(
    frames: dict[str, pd.DataFrame],
    *,
    sources: dict[str, str] | None = None,
    offers: tuple[str, ...] = (),
    orphans: str = "error",
    allow_empty: bool = False,
    date_format: str | None = None,
) -> Tables:
    """Validate DataFrames passed from Python exactly as files are validated (``allow_empty``, ``date_format``:
    see ``validate``)."""
    unknown = set(frames) - set(TABLES)
    if unknown:
        raise ContractError(f"unknown table(s) {sorted(unknown)}; expected some of {list(TABLES)}")
    sources = sources or {}
    checked = {
        name: validate(
            TABLES[name],
            frame,
            source=sources.get(name, name),
            offers=offers,
            allow_empty=allow_empty,
            date_format=date_format,
        )
        for name, frame in frames.items()
    }
    return _assemble(checked, sources, orphans)


def _assemble(checked: dict[str, pd.DataFrame], sources: dict[str, str], orphans: str) -> Tables:
    """The checks across tables: someone names the customers; rows of unknown customers."""
    if orphans not in ORPHAN_POLICIES:
        raise ValueError(f"orphans must be one of {ORPHAN_POLICIES}, got {orphans!r}")
    tables = Tables(**checked)
    tables.customer_ids()  # raises when no table names the customers
    return _handle_orphans(tables, sources, orphans)


def _handle_orphans(tables: Tables, sources: dict[str, str], policy: str) -> Tables:
    """Rows for customers missing from the customers table: error, or drop with a warning."""
    if tables.customers is None:
        return tables
    updates = {}
    for name, frame in tables.present().items():
        if name == "customers":
            continue
        if not warehouse(tables).orphans(name):
            continue
        orphan = ~frame[CUSTOMER_ID].isin(tables.customers[CUSTOMER_ID]).to_numpy()
        where = sources.get(name, name)
        ids = frame.loc[orphan, CUSTOMER_ID]
        msg = (
            f"{where}, column {CUSTOMER_ID!r}: {int(orphan.sum())} row(s) for {ids.nunique()} customer(s) "
            f"missing from the customers table (first: {list(ids.unique()[:5])})"
        )
        if policy == "error":
            raise ContractError(
                msg + "; add them to customers, or pass --orphans drop (or set orphans: drop in configs/features.yaml)"
            )
        log.warning("%s; dropping them", msg)
        updates[name] = frame.loc[~orphan].reset_index(drop=True)
    return replace(tables, **updates) if updates else tables
