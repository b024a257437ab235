"""HTTP, batch and Spark give the same scores for the same customers (Spark in local[2] mode).

Prospects come out of Spark with null churn fields and the reason, as from the batch job, and an offer-only
registry scores through Spark's entry point.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pandas as pd
import pytest

from features.sources import load_tables
from serving.config import ServingConfig
from serving.models import load_models
from serving.schema import NO_ORDER, VALUE_FIELDS
from tests.conftest import copy_configs
from tests.serving_champions import AS_OF, champions, offer_only, registry, score_batch, scoring_job
from tests.serving_champions import loaded as champion_inputs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return champions(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def loaded(champ):
    """(serving config, champion models, demo tables): what every test here scores with."""
    config, tables, models = champion_inputs(champ)
    return config, models, tables


def same_as_batch(by_spark: pd.DataFrame, by_batch: pd.DataFrame) -> None:
    """Spark's scores (sorted by customer) are the batch file's, column for column, as_of's text included."""
    pd.testing.assert_frame_equal(by_spark, by_batch, check_dtype=False, check_index_type=False, atol=1e-12)
    assert (by_spark["as_of"] == AS_OF).all()


def test_http_batch_and_spark_agree(loaded, tmp_path):
    """Spark is given the as-of date as an instant in another zone: its as_of text is still the batch file's."""
    from starlette.testclient import TestClient

    from features.config import FeaturesConfig
    from serving.job import ScoringJob
    from serving.service import Retain
    from serving.spark import local_session, score_spark

    config, models, tables = loaded
    store = tmp_path / "store.sqlite"
    batch = score_batch(config, tables, models, tmp_path / "scores.parquet", reasons=True, store=store)
    by_batch = pd.read_parquet(batch.out).set_index("customer_id")

    from serving.store import SQLiteStore

    features = SQLiteStore(store).frame()
    spark = local_session(2)
    try:
        frame = spark.createDataFrame(features)
        as_of = pd.Timestamp(AS_OF, tz="UTC").tz_convert("America/New_York")  # the batch cutoff, the day before there
        job = ScoringJob(as_of, models, config, FeaturesConfig(), reasons=True)
        by_spark = score_spark(frame, job, partitions=4).toPandas().set_index("customer_id").sort_index()
    finally:
        spark.stop()
    assert len(by_spark) == len(by_batch)
    same_as_batch(by_spark, by_batch)
    assert models.value is not None and by_batch["predicted_value"].notna().sum() > 1000  # value fields compared too

    ids = by_batch.index[:40].tolist()
    before = os.environ.get("RETAIN_CONFIGS")
    copy_configs(tmp_path / "configs", serving=f"store: {store}\nworkers: 1\n")
    os.environ["RETAIN_CONFIGS"] = str(tmp_path / "configs")
    try:
        with TestClient(Retain.to_asgi()) as client:
            body = client.post("/score_ids", json={"customer_ids": ids, "reasons": True}).json()
    finally:
        os.environ.pop("RETAIN_CONFIGS") if before is None else os.environ.update(RETAIN_CONFIGS=before)
    assert any(s["churn_probability"] is None for s in body["scores"])  # prospects among them
    for s in body["scores"]:
        row = by_batch.loc[s["customer_id"]]
        if pd.isna(row["churn_probability"]):
            assert s["churn_probability"] is None and s["churn_unscored_reason"] == row["churn_unscored_reason"]
        else:
            assert s["churn_probability"] == pytest.approx(row["churn_probability"], abs=1e-12)
        assert (s["risk_band"], s["lifecycle_stage"], s["recommended_offer"]) == (
            None if pd.isna(row["risk_band"]) else row["risk_band"],
            row["lifecycle_stage"],
            row["recommended_offer"],
        )
        for offer in ("free_shipping", "discount_20"):
            assert s[f"profit_{offer}"] == pytest.approx(row[f"profit_{offer}"], abs=1e-12)
        assert (s["next_action"], s["contact_at"]) == (row["next_action"], row["contact_at"])
        assert [r["feature"] for r in s["reasons"]] == [
            row[f"reason_{k}"] for k in range(1, 4) if isinstance(row[f"reason_{k}"], str)
        ]
        assert {f: s[f] for f in VALUE_FIELDS} == {f: None if pd.isna(row[f]) else row[f] for f in VALUE_FIELDS}
        assert s["value_model_version"] == row["value_model_version"] == models.value_label
    assert any(s["predicted_value"] is not None for s in body["scores"])


def test_features_built_per_spark_partition_score_like_the_batch_job(loaded, tmp_path, monkeypatch):
    """Raw tables in, features built per partition of customers (population vocabulary), scores out.

    BG/NBD is fitted on a CRC-32 sample of the buyers here (a small SAMPLE), so the
    driver's sampled orders must give exactly the parameters the whole build fits.
    """
    from features.build import learn_vocabulary
    from features.builders import lifetime
    from features.sources import check_tables
    from serving.spark import local_session, population_tables, score_tables_spark

    monkeypatch.setattr(lifetime, "SAMPLE", 400)

    config, models, tables = loaded
    few = tables.reviews["customer_id"].drop_duplicates().head(2)  # so that most partitions hold no reviews
    tables = replace(tables, reviews=tables.reviews[tables.reviews["customer_id"].isin(few)].reset_index(drop=True))
    batch = score_batch(config, tables, models, tmp_path / "scores.parquet", reasons=True)
    by_batch = pd.read_parquet(batch.out).set_index("customer_id")

    spark = local_session(2)
    try:
        frames = {name: spark.createDataFrame(frame) for name, frame in tables.present().items() if name != "offers"}
        for sample in (10**9, 400):  # all buyers, then a sample of them (the setting scored below)
            monkeypatch.setattr(lifetime, "SAMPLE", sample)
            probe = check_tables(population_tables(frames, as_of=pd.Timestamp(AS_OF)))
            assert learn_vocabulary(probe, cutoff=AS_OF) == learn_vocabulary(tables, cutoff=AS_OF)
        assert len(probe.orders) < len(tables.orders) / 2  # the driver did not get every order
        scored = score_tables_spark(frames, scoring_job(models, config, reasons=True), partitions=5)
        by_spark = scored.toPandas().set_index("customer_id").sort_index()
    finally:
        spark.stop()
    assert len(by_spark) == len(by_batch)
    same_as_batch(by_spark, by_batch)
    assert models.value is not None and by_batch["predicted_value"].notna().sum() > 1000  # value fields compared too
    first = tables.orders[tables.orders["ordered_at"] < AS_OF].groupby("customer_id")["ordered_at"].min()
    prospect = ~by_spark.index.isin(first.index.astype(str))
    assert 0 < prospect.sum() < len(by_spark)
    assert by_spark.loc[prospect, "churn_probability"].isna().all() and by_spark.loc[prospect, "risk_band"].isna().all()
    assert (by_spark.loc[prospect, "churn_unscored_reason"] == NO_ORDER).all()
    assert by_spark.loc[prospect, "reason_1"].isna().all() and by_spark.loc[prospect, "recommended_offer"].notna().all()
    assert by_spark.loc[~prospect, "churn_probability"].notna().all()


def test_spark_submit_scores_offers_with_only_an_offer_champion(tmp_path_factory, tmp_path):
    """No orders table, no churn champion: Spark gives the batch job's offers, churn fields null with the reason."""
    from serving.spark import local_session, main

    oo = offer_only(tmp_path_factory.mktemp("offer-only"))
    tables = load_tables(oo.data_dir, offers=("free_shipping", "discount_20"))
    config = ServingConfig.load(oo.configs)
    out = tmp_path / "spark-scores"
    with registry(oo.uri):
        models = load_models(config)
        batch = score_batch(config, replace(tables, offers=None), models, tmp_path / "scores.parquet")
        spark = local_session(2)
        try:
            main(["--data", str(oo.data_dir), "--as-of", AS_OF, "--out", str(out), "--configs", str(oo.configs)])
        finally:
            spark.stop()
    by_spark = pd.read_parquet(out).set_index("customer_id").sort_index()
    by_batch = pd.read_parquet(batch.out).set_index("customer_id")
    same_as_batch(by_spark, by_batch)
    reason = "no churn model: no retain-churn@champion in the registry"
    assert by_spark["churn_probability"].isna().all() and (by_spark["churn_unscored_reason"] == reason).all()
    assert by_spark["recommended_offer"].notna().all() and by_spark["profit_discount_20"].notna().all()
    assert by_spark["offer_model_version"].str.startswith("retain-offers v").all()


def test_a_partition_of_customers_unknown_before_the_cutoff_gives_no_rows(loaded):
    from features.build import learn_vocabulary
    from features.config import FeaturesConfig
    from serving.spark import score_partition

    config, models, tables = loaded
    vocabulary = learn_vocabulary(tables, cutoff=AS_OF, config=FeaturesConfig())
    signed_up = tables.customers["signed_up_at"]
    late, early = tables.customers[signed_up >= AS_OF].head(3), tables.customers[signed_up < AS_OF].head(3)
    assert len(late) == len(early) == 3
    job = scoring_job(models, config)
    none = {name: frame.iloc[:0] for name, frame in tables.present().items() if name != "offers"}
    nobody = score_partition({**none, "customers": late}, job, vocabulary=vocabulary)
    someone = score_partition({**none, "customers": early}, job, vocabulary=vocabulary)
    assert nobody.empty and list(nobody.columns) == list(someone.columns) and len(someone) == 3


def test_ids_typed_differently_per_table_meet_in_one_partition_and_text_dates_are_refused():
    from pyspark.sql import functions as F

    from serving.spark import local_session
    from serving.spark_tables import check_spark_input, customer_key

    spark = local_session(2)
    try:
        frames = [
            spark.createDataFrame(pd.DataFrame({"customer_id": [17, 18]})),
            spark.createDataFrame(pd.DataFrame({"customer_id": [17.0, 18.0]})),
            spark.createDataFrame(pd.DataFrame({"customer_id": ["17", "18"]})),
        ]
        keys = [[r[0] for r in df.select(F.hash(customer_key(df))).collect()] for df in frames]
        assert keys[0] == keys[1] == keys[2]
        text_dates = spark.createDataFrame(pd.DataFrame({"customer_id": ["a"], "ordered_at": ["2026-01-01"]}))
        with pytest.raises(ValueError, match="orders, column 'ordered_at': type string, expected a timestamp"):
            check_spark_input({"orders": text_dates})
    finally:
        spark.stop()


def test_spark_submit_entry_point_scores_a_folder_of_parquet_tables(champ, loaded, tmp_path):
    """``serving/spark.py --data DIR``: absent tables are skipped, scores equal the batch job's."""
    from serving.spark import local_session, main

    config, models, tables = loaded
    data = tmp_path / "tables"
    data.mkdir()
    for name, frame in tables.present().items():
        if name not in ("offers", "reviews"):  # no reviews file at all: that table is absent
            frame.to_parquet(data / f"{name}.parquet", index=False)
    present = replace(tables, reviews=None, offers=None)
    batch = score_batch(config, present, models, tmp_path / "scores.parquet")
    spark = local_session(2)
    try:
        out = tmp_path / "spark-scores"
        main(["--data", str(data), "--as-of", AS_OF, "--out", str(out), "--configs", str(champ.configs)])
    finally:
        spark.stop()
    by_spark = pd.read_parquet(out).set_index("customer_id").sort_index()
    by_batch = pd.read_parquet(batch.out).set_index("customer_id")
    same_as_batch(by_spark, by_batch)


def test_spark_submit_refuses_before_starting_spark_when_neither_champion_is_registered(champ, tmp_path):
    from modeling.errors import NoChampion
    from serving.spark import main

    configs = copy_configs(tmp_path / "configs", serving="churn_model: not-trained\noffer_model: not-offered\n")
    with pytest.raises(NoChampion, match="no not-trained@champion.*no not-offered@champion"):
        main(["--data", str(tmp_path), "--as-of", AS_OF, "--out", str(tmp_path / "out"), "--configs", str(configs)])
    assert not (tmp_path / "out").exists()
