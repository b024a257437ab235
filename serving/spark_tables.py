"""Contract tables on Spark: one key per customer, the input checks, a partition's rows packed per table, and the
small sample of the population the driver learns the vocabulary from."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from features.builders import lifetime
from features.contract import CUSTOMER_ID, CUSTOMERS, INTERESTS, OFFERS, ORDERS, TABLES

PART, TABLE, PAYLOAD = "_retain_part", "_retain_table", "_retain_payload"
TIME_TYPES = ("timestamp", "timestamp_ntz", "date")


def customer_key(df):
    """customer_id as the text ``validate`` makes of it, so every table sends a customer to the same partition.

    Parquet files may store ids as numbers in one table and text in another; 17, 17.0 and "17" are one customer.
    """
    from pyspark.sql import functions as F

    col, kind = F.col(CUSTOMER_ID), dict(df.dtypes)[CUSTOMER_ID]
    if kind in ("float", "double") or kind.startswith("decimal"):
        return F.when(col == F.floor(col), col.cast("long").cast("string")).otherwise(col.cast("string"))
    return col.cast("string")


def check_spark_input(tables: dict) -> None:
    """Time columns must be Spark timestamps (text dates sort as text), and the session clock UTC."""
    from pyspark.sql import SparkSession

    for name, df in tables.items():
        column = TABLES[name].time_column
        kind = dict(df.dtypes).get(column)
        if kind is not None and kind not in TIME_TYPES:
            raise ValueError(
                f"Spark table {name}, column {column!r}: type {kind}, expected a timestamp; "
                f"convert it first, e.g. df.withColumn({column!r}, F.to_timestamp({column!r}))"
            )
    zone = SparkSession.getActiveSession().conf.get("spark.sql.session.timeZone")
    if zone != "UTC":
        raise ValueError(
            f"spark.sql.session.timeZone is {zone!r}; set it to UTC so naive timestamps reach pandas unchanged"
        )


def _to_bytes(frame: pd.DataFrame) -> bytes:
    """One table's rows of one partition as a compressed Arrow stream (a Spark binary cell holds < 2 GiB)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_bytes(payload: bytes) -> pd.DataFrame:
    return pa.ipc.open_stream(payload).read_pandas()


def population_tables(tables: dict, *, as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """What the builders' ``learn`` steps need, as pandas on the driver, never the whole of the big tables.

    Customers and interests as they are (one row or a few per customer). Orders:
    every order of the buyers the BG/NBD and Gamma-Gamma fits sample (``lifetime.in_sample``,
    the same CRC-32 rule) with its amount, and each other customer's first order, which is
    all the other steps need from orders (who is known before the cutoff), with amount 0.
    """
    from pyspark.sql import functions as F

    out = {name: tables[name].toPandas() for name in (CUSTOMERS.name, INTERESTS.name) if name in tables}
    if ORDERS.name in tables:
        orders = tables[ORDERS.name]
        orders = orders.select(customer_key(orders).alias(CUSTOMER_ID), ORDERS.ordered_at, ORDERS.amount)
        buyers = orders.where(F.col(ORDERS.ordered_at) < F.lit(as_of)).select(CUSTOMER_ID).distinct()
        if CUSTOMERS.name in tables:  # rows of unknown customers are not in the population
            known = tables[CUSTOMERS.name].select(customer_key(tables[CUSTOMERS.name]).alias(CUSTOMER_ID))
            buyers = buyers.join(known, on=CUSTOMER_ID, how="left_semi")
        modulus = lifetime.sample_modulus(buyers.count())
        if modulus > 1:  # the sample's orders, each other customer's first (no order twice: the fit counts them)
            in_sample = F.crc32(CUSTOMER_ID) % modulus == 0
            first = orders.where(~in_sample).groupBy(CUSTOMER_ID).agg(F.min(ORDERS.ordered_at).alias(ORDERS.ordered_at))
            first = first.withColumn(ORDERS.amount, F.lit(0.0).cast(dict(orders.dtypes)[ORDERS.amount]))
            orders = orders.where(in_sample).unionByName(first)
        out[ORDERS.name] = orders.toPandas()
    return out


def by_customer(tables: dict, partitions: int):
    """One row per (partition of customers, table): that table's rows of those customers, packed (``unpack``).

    Every table is split by the same hash of customer_id, so a partition holds some customers with all their rows.
    """
    from pyspark.sql import functions as F

    def pack(name: str):
        def run(pdf: pd.DataFrame) -> pd.DataFrame:
            part = int(pdf[PART].iloc[0])
            return pd.DataFrame({PART: [part], TABLE: [name], PAYLOAD: [_to_bytes(pdf.drop(columns=PART))]})

        return run

    packed = None
    for name, df in tables.items():
        rows = df.withColumn(PART, F.pmod(F.hash(customer_key(df)), F.lit(partitions)))
        one = rows.groupBy(PART).applyInPandas(pack(name), schema=f"{PART} int, {TABLE} string, {PAYLOAD} binary")
        packed = one if packed is None else packed.unionByName(one)
    return packed


def unpack(pdf: pd.DataFrame, empty: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """A partition's packed rows -> its tables (``empty``'s for those without rows there)."""
    return {**empty, **{t: _from_bytes(b) for t, b in zip(pdf[TABLE], pdf[PAYLOAD], strict=True)}}


def read_tables(spark, data: str) -> dict:
    """``<data>/<table>.parquet`` for each contract table that exists there (the offers log is not needed)."""
    from pyspark.errors import AnalysisException

    tables = {}
    for name in TABLES:
        if name == OFFERS.name:
            continue
        try:
            tables[name] = spark.read.parquet(f"{data.rstrip('/')}/{name}.parquet")
        except AnalysisException as exc:
            if "PATH_NOT_FOUND" not in str(exc) and "Path does not exist" not in str(exc):
                raise
    if not tables:
        raise SystemExit(f"{data}: no <table>.parquet for any of {[t for t in TABLES if t != OFFERS.name]}")
    return tables
