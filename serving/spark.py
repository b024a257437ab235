"""The same scorer on PySpark, for customer bases that outgrow one machine.

``score_spark`` repartitions a Spark DataFrame of feature rows by customer_id and
runs ``serving.scoring.score_frame`` on each partition with ``mapInPandas``; the
models travel to the executors once per task in the closure (boosters pickle as
model text). Every partition calls the very function the service and the batch
job call, so the three agree row for row (tests/test_spark.py).

Feature rows come from ``features.build.build_features`` (``retain build-features``
writes them as Parquet) or from any job that writes the same columns; the
lifecycle base stage column is optional. Run on a cluster with::

    zip -qr retain.zip features analytics serving configs
    spark-submit --master yarn --deploy-mode cluster --py-files retain.zip \\
        serving/spark.py --features hdfs:///retain/features.parquet --as-of 2026-06-01 \\
        --out hdfs:///retain/scores.parquet

The driver loads the champions from the registry (``MLFLOW_TRACKING_URI``) once;
executors need the project's Python dependencies (lightgbm, scikit-learn, pandas,
pyarrow), not registry access.
"""

from __future__ import annotations

import argparse

import pandas as pd

from features.contract import CUSTOMER_ID
from serving.config import ServingConfig
from serving.models import Models
from serving.scoring import BASE_STAGE, score_frame

SPARK_TYPES = {"float64": "double", "string": "string", "str": "string", "object": "string", "int64": "long"}


def local_session(cores: int = 2, app: str = "retain-scoring"):
    """A local Spark session (tests, benchmarks): Arrow on, small shuffle, workers on this interpreter."""
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
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )


def output_schema(sample: pd.DataFrame) -> str:
    """Spark DDL for the scorer's output, derived from one locally scored sample."""
    parts = []
    for col, dtype in sample.dtypes.items():
        kind = SPARK_TYPES.get(str(dtype).split("[")[0], "string")
        parts.append(f"`{col}` {kind}")
    return ", ".join(parts)


def score_spark(features, *, as_of, models: Models, config: ServingConfig, reasons: bool = False, partitions=None):
    """Spark DataFrame of feature rows (customer_id column) -> Spark DataFrame of scores, one row per customer."""
    columns = [CUSTOMER_ID, *models.features] + ([BASE_STAGE] if BASE_STAGE in features.columns else [])
    missing = [c for c in columns if c not in features.columns]
    models.check_features([c for c in features.columns if c not in (CUSTOMER_ID, BASE_STAGE)], source="Spark features")
    if missing:
        raise ValueError(f"Spark feature table lacks {missing[:10]}")
    features = features.select(*columns)
    sample = features.limit(1).toPandas()
    schema = output_schema(score_frame(sample, as_of=as_of, models=models, config=config, reasons=reasons))
    n = partitions or features.rdd.getNumPartitions()
    features = features.repartition(n, CUSTOMER_ID)

    def run(batches):
        for pdf in batches:
            if len(pdf):
                yield score_frame(pdf, as_of=as_of, models=models, config=config, reasons=reasons)

    return features.mapInPandas(run, schema=schema)


def main(argv: list[str] | None = None) -> None:
    """spark-submit entry point: features Parquet in, scores Parquet out."""
    from pyspark.sql import SparkSession

    from features.config import CONFIG_DIR, load_config
    from serving.models import load_models

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--features", required=True, help="Parquet feature rows (customer_id column)")
    parser.add_argument("--as-of", required=True, help="the date the features were built for")
    parser.add_argument("--out", required=True, help="Parquet folder for the scores")
    parser.add_argument("--reasons", action="store_true", help="add the top churn reasons")
    parser.add_argument("--configs", default=str(CONFIG_DIR), help="folder with serving.yaml")
    args = parser.parse_args(argv)
    config = load_config(ServingConfig, f"{args.configs}/serving.yaml")
    spark = SparkSession.builder.appName("retain-scoring").getOrCreate()
    models = load_models(config)
    features = spark.read.parquet(args.features)
    scores = score_spark(features, as_of=args.as_of, models=models, config=config, reasons=args.reasons)
    scores.write.mode("overwrite").parquet(args.out)  # Spark commits the folder atomically (_SUCCESS)


if __name__ == "__main__":
    main()
