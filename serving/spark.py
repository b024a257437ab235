"""The same feature builders and scorer on PySpark, for customer bases that outgrow one machine.

Two entry points, both ending in ``serving.scoring.score_frame``, the function
the service and the batch job call, so all of them agree row for row
(tests/test_spark.py):

* ``score_tables_spark``: the raw contract tables. Every table is split by a
  hash of customer_id into the same partitions, so one partition holds some
  customers with all of their rows; each partition runs ``build_features``,
  the lifecycle rules and the scorer in pandas (``applyInPandas``). The few
  choices made over the whole population (which levels keep their name, which
  interests get a column, BG/NBD's and Gamma-Gamma's parameters) are learned once on the driver
  from one row per customer plus a sample of buyers' orders
  (``features.build.learn_vocabulary``) and shipped to every partition.
* ``score_spark``: feature rows already built (``retain build-features``),
  repartitioned by customer_id and scored with ``mapInPandas``.

The models travel to the executors once per task in the closure (boosters
pickle as model text). Run on a cluster with::

    zip -qr retain.zip features analytics serving configs
    spark-submit --master yarn --deploy-mode cluster --py-files retain.zip \\
        serving/spark.py --data hdfs:///retain/tables --as-of 2026-06-01 \\
        --out hdfs:///retain/scores.parquet

``--data`` holds ``<table>.parquet`` per contract table (absent ones are
skipped); ``--features`` takes built feature rows instead. The driver loads the
champions from the registry (``MLFLOW_TRACKING_URI``) once; executors need the
project's Python dependencies (lightgbm, scikit-learn, pandas, pyarrow, duckdb),
not registry access. As everywhere, prospects get null churn fields with the
reason, and an offer champion alone is enough (churn fields null, offers filled);
with neither champion ``main`` refuses before it starts Spark.
"""

from __future__ import annotations

import argparse

import pandas as pd
import pyarrow as pa

from features.build import learn_vocabulary
from features.builders import lifetime
from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID, CUSTOMERS, INTERESTS, OFFERS, ORDERS, TABLES, parse_cutoff
from features.sources import check_tables
from modeling.lifecycle import LifecycleConfig
from serving.batch import snapshot_frame
from serving.config import ServingConfig
from serving.models import Models
from serving.scoring import LIFECYCLE_COLUMNS, score_frame

SPARK_TYPES = {"float64": "double", "string": "string", "str": "string", "object": "string", "int64": "long"}


def local_session(cores: int = 2, app: str = "retain-scoring", memory: str = "4g"):
    """A local Spark session (tests, benchmarks): Arrow on, small shuffle, workers on this interpreter.

    ``memory`` is the JVM heap; a whole partition of customers passes through it (Spark's 1g default is too small
    for tens of millions of events).
    """
    import os
    import sys

    from pyspark.sql import SparkSession

    from features.config import ROOT

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))

    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", str(cores * 2))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")  # naive timestamps round-trip unchanged
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.memory", memory)
        .getOrCreate()
    )


def empty_scores(*, as_of, models: Models, config: ServingConfig, reasons: bool) -> pd.DataFrame:
    """The scorer's output with no rows: its columns and dtypes, from one stand-in customer."""
    stand_in = pd.DataFrame({CUSTOMER_ID: ["x"], **{f: [None] for f in models.inputs}})
    return score_frame(stand_in, as_of=as_of, models=models, config=config, reasons=reasons).iloc[:0]


def spark_schema(frame: pd.DataFrame) -> str:
    """Spark DDL for a pandas frame's columns."""
    kinds = (SPARK_TYPES.get(str(dtype).split("[")[0], "string") for dtype in frame.dtypes)
    return ", ".join(f"`{col}` {kind}" for col, kind in zip(frame.columns, kinds, strict=True))


def score_spark(features, *, as_of, models: Models, config: ServingConfig, reasons: bool = False, partitions=None):
    """Spark DataFrame of feature rows (customer_id column) -> Spark DataFrame of scores, one row per customer.

    The lifecycle columns (``serving.scoring.LIFECYCLE_COLUMNS``), when the rows carry them, give the stage, the
    next action and contact_at; without them those fields are null. With a value model the rows must carry the
    value columns (``features.value``), as the feature snapshot does.
    """
    lifecycle = [c for c in LIFECYCLE_COLUMNS if c in features.columns]
    columns = [CUSTOMER_ID, *models.inputs, *lifecycle]
    missing = [c for c in columns if c not in features.columns]
    built = [c for c in features.columns if c != CUSTOMER_ID and c not in LIFECYCLE_COLUMNS]
    models.check_features(built, source="Spark features")
    if missing:
        raise ValueError(f"Spark feature table lacks {missing[:10]}")
    features = features.select(*columns)
    schema = spark_schema(empty_scores(as_of=as_of, models=models, config=config, reasons=reasons))
    n = partitions or features.rdd.getNumPartitions()
    features = features.repartition(n, CUSTOMER_ID)

    def run(batches):
        for pdf in batches:
            if len(pdf):
                yield score_frame(pdf, as_of=as_of, models=models, config=config, reasons=reasons)

    return features.mapInPandas(run, schema=schema)


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


def population_tables(tables: dict, *, as_of) -> dict[str, pd.DataFrame]:
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
        buyers = orders.where(F.col(ORDERS.ordered_at) < F.lit(parse_cutoff(as_of))).select(CUSTOMER_ID).distinct()
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


def score_partition(
    frames: dict[str, pd.DataFrame],
    *,
    as_of,
    models: Models,
    config: ServingConfig,
    features: FeaturesConfig,
    lifecycle_config: LifecycleConfig,
    vocabulary: dict,
    reasons: bool = False,
    offers: tuple[str, ...] = (),
    orphans: str = "error",
) -> pd.DataFrame:
    """Some customers with all their rows in every table -> their scores, exactly as the batch job makes them.

    ``vocabulary`` is the whole population's. A partition whose customers are all
    unknown before the cutoff gives no rows.
    """
    tables = check_tables(frames, offers=offers, orphans=orphans, allow_empty=True)
    frame = snapshot_frame(
        tables,
        as_of=as_of,
        models=models,
        features=features,
        lifecycle_config=lifecycle_config,
        vocabulary=vocabulary,
        progress=False,
    )
    if frame.empty:
        return empty_scores(as_of=as_of, models=models, config=config, reasons=reasons)
    day = parse_cutoff(as_of).strftime("%Y-%m-%d")
    return score_frame(frame, as_of=day, models=models, config=config, reasons=reasons)


def score_tables_spark(
    tables: dict,
    *,
    as_of,
    models: Models,
    config: ServingConfig,
    features: FeaturesConfig,
    lifecycle_config: LifecycleConfig,
    reasons: bool = False,
    partitions: int | None = None,
    offers: tuple[str, ...] = (),
    orphans: str = "error",
):
    """Contract tables as Spark DataFrames (name -> DataFrame) -> Spark DataFrame of scores, one row per customer.

    Every table is split by a hash of customer_id into the same ``partitions``;
    each partition goes through :func:`score_partition` with the population's
    vocabulary, learned here on the driver.
    """
    from pyspark.sql import functions as F

    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; expected some of {list(TABLES)}")
    check_spark_input(tables)
    probe = check_tables(population_tables(tables, as_of=as_of), offers=offers, orphans=orphans)
    vocabulary = learn_vocabulary(probe, cutoff=as_of, config=features)
    empty = {name: df.limit(0).toPandas() for name, df in tables.items()}  # a table with no rows in a partition
    schema = spark_schema(empty_scores(as_of=as_of, models=models, config=config, reasons=reasons))
    n = partitions or max(df.rdd.getNumPartitions() for df in tables.values())

    def pack(name: str):
        def run(pdf: pd.DataFrame) -> pd.DataFrame:
            part = int(pdf[PART].iloc[0])
            return pd.DataFrame({PART: [part], TABLE: [name], PAYLOAD: [_to_bytes(pdf.drop(columns=PART))]})

        return run

    packed = None
    for name, df in tables.items():
        rows = df.withColumn(PART, F.pmod(F.hash(customer_key(df)), F.lit(n)))
        one = rows.groupBy(PART).applyInPandas(pack(name), schema=f"{PART} int, {TABLE} string, {PAYLOAD} binary")
        packed = one if packed is None else packed.unionByName(one)

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        frames = {**empty, **{t: _from_bytes(b) for t, b in zip(pdf[TABLE], pdf[PAYLOAD], strict=True)}}
        return score_partition(
            frames,
            as_of=as_of,
            models=models,
            config=config,
            features=features,
            lifecycle_config=lifecycle_config,
            vocabulary=vocabulary,
            reasons=reasons,
            offers=offers,
            orphans=orphans,
        )

    return packed.groupBy(PART).applyInPandas(run, schema=schema)


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


def main(argv: list[str] | None = None) -> None:
    """spark-submit entry point: contract tables (or built feature rows) in Parquet, scores Parquet out."""
    from pyspark.sql import SparkSession

    from features.config import CONFIG_DIR, load_config
    from serving.models import load_models

    parser = argparse.ArgumentParser(description=main.__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="folder with <table>.parquet per contract table: features are built here")
    source.add_argument("--features", help="Parquet feature rows (customer_id column), built elsewhere")
    parser.add_argument("--as-of", required=True, help="the cutoff: features see only data strictly before it")
    parser.add_argument("--out", required=True, help="Parquet folder for the scores")
    parser.add_argument("--reasons", action="store_true", help="add the top churn reasons")
    parser.add_argument("--configs", default=str(CONFIG_DIR), help="folder with serving.yaml, features.yaml, ...")
    parser.add_argument("--orphans", default="error", choices=["error", "drop"], help="rows of unknown customers")
    args = parser.parse_args(argv)
    config = ServingConfig.load(args.configs)
    models = load_models(config)  # refuses (no champion at all, a broken one) before Spark starts
    spark = SparkSession.builder.appName("retain-scoring").config("spark.sql.session.timeZone", "UTC").getOrCreate()
    if args.data:
        scores = score_tables_spark(
            read_tables(spark, args.data),
            as_of=args.as_of,
            models=models,
            config=config,
            features=load_config(FeaturesConfig, f"{args.configs}/features.yaml"),
            lifecycle_config=config.lifecycle,
            reasons=args.reasons,
            orphans=args.orphans,
        )
    else:
        features = spark.read.parquet(args.features)
        scores = score_spark(features, as_of=args.as_of, models=models, config=config, reasons=args.reasons)
    scores.write.mode("overwrite").parquet(args.out)  # Spark commits the folder atomically (_SUCCESS)


if __name__ == "__main__":
    main()
