"""Small real champions for the serving tests, trained once per test process.

The churn champion comes from the real pipeline (``training.train.train_churn``)
on small demo data, in a temporary MLflow SQLite store. The offer champion comes
from ``training.offers.train_offers`` when it runs; while it does not, a small
S-learner is logged in the very format ``modeling.offer_model`` defines, so the
serving code is exercised against the same artifact layout. Only tests import
training; ``serving/`` never does.

``offer_only`` is a second shop and registry: customers and a campaign log but no
orders table, and only an offer champion (``train_offers``) registered, no churn
champion; its feature snapshot is written by the batch job.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.config import FeaturesConfig, OfferCatalog
from tests.conftest import copy_configs

AS_OF = "2026-06-01"
N_CUSTOMERS = 2500
SEED = 5
_CACHE: dict[str, Champions] = {}


@dataclass(frozen=True)
class Champions:
    root: Path
    uri: str
    data_dir: Path
    configs: Path
    store: Path
    offer_source: str  # "train_offers" or "stand-in"


def champions(root: Path) -> Champions:
    """Train (once per process) and register both champions; set MLFLOW_TRACKING_URI for the session."""
    if "c" in _CACHE:
        os.environ["MLFLOW_TRACKING_URI"] = _CACHE["c"].uri
        return _CACHE["c"]
    from features.runtime import quiet_telemetry
    from simulator.demo_data import generate, write

    quiet_telemetry()
    uri = f"sqlite:///{root}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    demo = generate(N_CUSTOMERS, days=730, seed=SEED)
    data_dir = write(demo, root / "data")
    catalog = OfferCatalog()
    from features.sources import load_tables

    tables = load_tables(data_dir, offers=catalog.names)
    _train_churn(tables, root)
    source = _offer_champion(tables, catalog, root)
    store = root / "store.sqlite"
    configs = copy_configs(root / "configs", serving=f"store: {store}\nworkers: 1\nmax_customers_per_request: 50\n")
    _CACHE["c"] = Champions(root, uri, data_dir, configs, store, source)
    return _CACHE["c"]


@contextlib.contextmanager
def registry(uri: str):
    """MLFLOW_TRACKING_URI (and MLflow's own setting) pointed at ``uri`` inside the block, restored after."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before
        from features.runtime import tracking_uri

        mlflow.set_tracking_uri(tracking_uri())


def register_version(uri: str, name: str, source: str, run_id: str, champion: bool = True) -> str:
    """Register ``source`` as a new version of ``name`` in the registry at ``uri`` (champion unless told not): its
    version.

    MLflow resolves a ``models:/m-...`` source through the global tracking URI, not the client's, so the version is
    created inside ``registry(uri)``; a test run after one that pointed MLflow elsewhere would otherwise fail.
    """
    from mlflow import MlflowClient

    with registry(uri):
        client = MlflowClient(tracking_uri=uri)
        version = client.create_model_version(name, source, run_id=run_id).version
        if champion:
            client.set_registered_model_alias(name, "champion", version)
    return str(version)


def serve_checked(configs: Path, env: dict, port: int | None = None) -> subprocess.CompletedProcess:
    """``retain serve`` with its start-up check (the one that refuses with exit 2), on ``port`` or a free one;
    ``env`` is added to this process's environment."""
    from serving import launch

    port = launch.free_port() if port is None else port
    return subprocess.run(
        [sys.executable, "-m", "retain", "serve", "--configs", str(configs), "--port", str(port)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def offer_only(root: Path) -> Champions:
    """A shop without orders whose campaign log is one randomised campaign, sent on one date, and a registry with
    an offer champion only (once per process); the env is left as is.

    Scores, the feature snapshot (``store``) and the registry are under ``root``; ``scores.parquet`` there is the
    batch job's output as of ``AS_OF``.
    """
    if "offer_only" in _CACHE:
        return _CACHE["offer_only"]
    from features.runtime import quiet_telemetry
    from features.sources import load_tables
    from serving.config import ServingConfig
    from serving.models import load_models
    from simulator.demo_data import generate
    from training.offers import OfferModelConfig, train_offers

    quiet_telemetry()
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    for name, frame in generate(N_CUSTOMERS, days=730, seed=SEED).tables.items():
        if name == "offers":  # the largest campaign alone: the commonest log a shop has
            day = frame["sent_at"].dt.normalize()
            frame = frame[day == day.value_counts().idxmax()]
        if name != "orders":
            frame.to_parquet(data_dir / f"{name}.parquet", index=False)
    catalog = OfferCatalog()
    tables = load_tables(data_dir, offers=catalog.names)
    store = root / "store.sqlite"
    configs = copy_configs(root / "configs", serving=f"store: {store}\nworkers: 1\nmax_customers_per_request: 50\n")
    uri = f"sqlite:///{root}/mlflow.db"
    with registry(uri):
        config = OfferModelConfig(trials=0, learners=("s",), experiment="retain-offers")
        train_offers(tables, catalog=catalog, config=config, out_dir=root / "offers")
        serving = ServingConfig(store=str(store))
        score_batch(serving, tables, load_models(serving, tracking_uri=uri), root / "scores.parquet", store=store)
    _CACHE["offer_only"] = Champions(root, uri, data_dir, configs, store, "train_offers")
    return _CACHE["offer_only"]


def _train_churn(tables, root: Path) -> None:
    from training.config import ChurnConfig
    from training.datasets import build_panel, plan_for
    from training.registry import start_tracking
    from training.train import train_churn

    features = FeaturesConfig()
    # isotonic, the other calibrator, so the serving tests cover its fast path (Platt is the default)
    config = ChurnConfig(
        calibration="isotonic", bootstrap=10, train_cutoffs=2, minimum={"customers": 100, "churners": 10}
    )
    plan = plan_for(tables, features=features, config=config)
    panel = build_panel(tables, plan, config=features)
    start_tracking(config.experiment, artifacts=(root / "artifacts").as_uri())
    train_churn(tables, panel, plan, features=features, config=config, out_dir=root / "churn")


def _offer_champion(tables, catalog: OfferCatalog, root: Path) -> str:
    try:
        from training.offers import OfferModelConfig, train_offers

        train_offers(
            tables,
            catalog=catalog,
            config=OfferModelConfig(trials=0, learners=("s",), experiment="retain-offers"),
            out_dir=root / "offers",
        )
        return "train_offers"
    except Exception as exc:  # the offer trainer is still being finished
        warnings.warn(f"train_offers failed ({type(exc).__name__}); registering a stand-in offer model", stacklevel=2)
        _stand_in_offer(tables, catalog, root)
        return "stand-in"


def _stand_in_offer(tables, catalog: OfferCatalog, root: Path) -> None:
    """An S-learner over the offer log, saved and registered exactly like the real offer model."""
    import lightgbm as lgb
    import mlflow
    from mlflow import MlflowClient

    from features.build import build_features, feature_columns
    from features.contract import CUSTOMER_ID
    from modeling.offer_model import ARM_COLUMN, OfferPolicyModel, arm_frame, save_model

    offers = tables.offers.copy()
    arms = ["none", *catalog.names]
    cutoff = offers["sent_at"].min().normalize()
    sends = offers[offers["sent_at"] >= cutoff].drop_duplicates(CUSTOMER_ID)
    frame = build_features(tables, cutoff=cutoff).reset_index()
    rows = sends.merge(frame, on=CUSTOMER_ID, how="inner")
    features = [c for c in feature_columns(frame) if c != CUSTOMER_ID]
    categories = {
        c: sorted(frame[c].dropna().astype(str).unique()) for c in features if frame[c].dtype.kind not in "fiub"
    }
    X = arm_frame(rows, features, categories).assign(**{ARM_COLUMN: rows["offer"].map(arms.index).to_numpy()})
    booster = lgb.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1, random_state=0).fit(X, rows["converted"])
    spec = {
        "arms": arms,
        "terms": {a: [{"booster": 0, "arm_code": j, "weight": 1.0}] for j, a in enumerate(arms)},
        "features": features,
        "categories": categories,
        "catalog": catalog.model_dump(),
        "order_value_feature": "sales_avg_order_value_all",
        "default_order_value": float(np.nanmean(frame["sales_avg_order_value_all"])),
        "order_count_feature": "sales_orders_all",
        "constant_offer": None,
    }
    folder = save_model([booster.booster_], spec, root / "offer_model")
    example = rows[features].head(5).copy()
    for c in categories:
        example[c] = example[c].astype(object)
    mlflow.set_experiment("retain-offers")
    with mlflow.start_run(run_name="stand-in offers"):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=OfferPolicyModel(),
            artifacts={"offer_model": str(folder)},
            input_example=pd.DataFrame(example),
            pip_requirements=["lightgbm", "pandas", "numpy"],
        )
    version = mlflow.register_model(info.model_uri, "retain-offers").version
    MlflowClient().set_registered_model_alias("retain-offers", "champion", version)


def build_settings() -> dict:
    """The default feature and lifecycle settings every scoring path takes (``features``, ``lifecycle_config``)."""
    from analytics.config import AnalyticsConfig

    return {"features": FeaturesConfig(), "lifecycle_config": AnalyticsConfig().lifecycle}


def score_batch(config, tables, models, out: Path, **kw):
    """``run_batch`` with the test defaults: demo as-of date, default configs, no MLflow, no progress bar."""
    from serving.batch import run_batch

    kw.setdefault("track", False)
    return run_batch(
        tables, as_of=AS_OF, models=models, config=config, out=out, progress=False, **build_settings(), **kw
    )


def with_snapshot(champ: Champions) -> Champions:
    """The champions with their feature snapshot: scores the shop once (as ``retain score`` would) if it is absent."""
    if not champ.store.exists():
        from features.sources import load_tables
        from serving.config import ServingConfig
        from serving.models import load_models

        config = ServingConfig.load(champ.configs)
        tables = load_tables(champ.data_dir, offers=("free_shipping", "discount_20"))
        score_batch(config, tables, load_models(config), champ.root / "scores.parquet", store=champ.store)
    return champ


def score_args(champ: Champions, out: Path, *extra: str) -> list[str]:
    """``retain score`` arguments for the champions' shop as of the demo date, writing ``out``."""
    return ["score", "--as-of", AS_OF, "--data", str(champ.data_dir), "--out", str(out), *extra]
