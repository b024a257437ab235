"""The same feature builders and scorer on PySpark, for customer bases that outgrow one machine.

Two entry points, both ending in ``serving.scoring.score_frame``, the function
the service and the batch job call, so all of them agree row for row
(tests/serving/test_spark.py):

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

The job (``serving.job.ScoringJob``: the as-of instant, the models, the
settings) travels to the executors once per task in the closure (boosters
pickle as model text). ``serving.spark_tables`` holds the Spark side of the
contract tables. Run on a cluster with::

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

from features.build import learn_vocabulary
from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID, TABLES
from features.sources import check_tables
from serving.config import ServingConfig
from serving.inputs import snapshot_frame
from serving.job import ScoringJob
from serving.schema import LIFECYCLE_COLUMNS
from serving.scoring import score_frame
from serving.spark_tables import PART, by_customer, check_spark_input, population_tables, read_tables, unpack

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


def empty_scores(job: ScoringJob) -> pd.DataFrame:
    """The scorer's output with no rows: its columns and dtypes, from one stand-in customer."""
    stand_in = pd.DataFrame({CUSTOMER_ID: ["x"], **{f: [None] for f in job.models.inputs}})
    return score_frame(stand_in, job).iloc[:0]


def spark_schema(frame: pd.DataFrame) -> str:
    """Spark DDL for a pandas frame's columns."""
    kinds = (SPARK_TYPES.get(str(dtype).split("[")[0], "string") for dtype in frame.dtypes)
    return ", ".join(f"`{col}` {kind}" for col, kind in zip(frame.columns, kinds, strict=True))


def score_spark(features, job: ScoringJob, *, partitions: int | None = None):
    """Spark DataFrame of feature rows (customer_id column) -> Spark DataFrame of scores, one row per customer.

    The lifecycle columns (``serving.schema.LIFECYCLE_COLUMNS``), when the rows carry them, give the stage, the
    next action and contact_at; without them those fields are null. With a value model the rows must carry the
    value columns (``features.value``), as the feature snapshot does. ``job.features`` is not used: the rows
    come built.
    """
    models = job.models
    lifecycle = [c for c in LIFECYCLE_COLUMNS if c in features.columns]
    columns = [CUSTOMER_ID, *models.inputs, *lifecycle]
    missing = [c for c in columns if c not in features.columns]
    built = [c for c in features.columns if c != CUSTOMER_ID and c not in LIFECYCLE_COLUMNS]
    models.check_features(built, source="Spark features")
    if missing:
        raise ValueError(f"Spark feature table lacks {missing[:10]}")
    features = features.select(*columns)
    schema = spark_schema(empty_scores(job))
    n = partitions or features.rdd.getNumPartitions()
    features = features.repartition(n, CUSTOMER_ID)

    def run(batches):
        for pdf in batches:
            if len(pdf):
                yield score_frame(pdf, job)

    return features.mapInPandas(run, schema=schema)


def score_partition(
    frames: dict[str, pd.DataFrame],
    job: ScoringJob,
    *,
    vocabulary: dict,
    offers: tuple[str, ...] = (),
    orphans: str = "error",
) -> pd.DataFrame:
    """Some customers with all their rows in every table -> their scores, exactly as the batch job makes them.

    ``vocabulary`` is the whole population's; ``offers`` and ``orphans`` as in ``features.sources.check_tables``.
    A partition whose customers are all unknown before the cutoff gives no rows.
    """
    tables = check_tables(frames, offers=offers, orphans=orphans, allow_empty=True)
    frame = snapshot_frame(tables, job, vocabulary=vocabulary, progress=False)
    return empty_scores(job) if frame.empty else score_frame(frame, job)


def score_tables_spark(
    tables: dict,
    job: ScoringJob,
    *,
    partitions: int | None = None,
    offers: tuple[str, ...] = (),
    orphans: str = "error",
):
    """Contract tables as Spark DataFrames (name -> DataFrame) -> Spark DataFrame of scores, one row per customer.

    Every table is split by a hash of customer_id into the same ``partitions``;
    each partition goes through :func:`score_partition` with the population's
    vocabulary, learned here on the driver.
    """
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; expected some of {list(TABLES)}")
    check_spark_input(tables)
    probe = check_tables(population_tables(tables, as_of=job.as_of), offers=offers, orphans=orphans)
    vocabulary = learn_vocabulary(probe, cutoff=job.as_of, config=job.features)
    empty = {name: df.limit(0).toPandas() for name, df in tables.items()}  # a table with no rows in a partition
    schema = spark_schema(empty_scores(job))
    n = partitions or max(df.rdd.getNumPartitions() for df in tables.values())

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        return score_partition(unpack(pdf, empty), job, vocabulary=vocabulary, offers=offers, orphans=orphans)

    return by_customer(tables, n).groupBy(PART).applyInPandas(run, schema=schema)


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
    features = load_config(FeaturesConfig, f"{args.configs}/features.yaml")
    job = ScoringJob(args.as_of, models, config, features, reasons=args.reasons)
    spark = SparkSession.builder.appName("retain-scoring").config("spark.sql.session.timeZone", "UTC").getOrCreate()
    if args.data:
        scores = score_tables_spark(read_tables(spark, args.data), job, orphans=args.orphans)
    else:
        scores = score_spark(spark.read.parquet(args.features), job)
    scores.write.mode("overwrite").parquet(args.out)  # Spark commits the folder atomically (_SUCCESS)


if __name__ == "__main__":
    main()
