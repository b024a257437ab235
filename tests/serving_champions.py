"""Small real champions for the serving tests, trained once per test process.

Both come from the real trainers on small demo data, in a temporary MLflow SQLite store: the churn
champion from ``train_churn``, the offer champion from ``train_offers`` (the ones ``retain train-churn``
and ``retain train-offers`` run), so a broken trainer fails every test that needs a champion. Only tests
import training; ``serving/`` never does.

``offer_only`` is a second shop and registry: customers and a campaign log but no orders table, and only
an offer champion registered, no churn champion; its feature snapshot is written by the batch job.

Where MLflow points is put back by ``tests.conftest`` after every test and every module.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from features.config import FeaturesConfig, OfferCatalog
from tests.conftest import copy_configs, kept_tracking

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


def champions(root: Path) -> Champions:
    """Train (once per process) and register both champions; point MLflow at their registry.

    The pointing lasts as long as the test, or the module fixture, that asked (``tests.conftest`` ends it).
    """
    if "c" not in _CACHE:
        from features.runtime import quiet_telemetry
        from features.sources import load_tables
        from simulator.demo_data import generate, write

        quiet_telemetry()
        uri = f"sqlite:///{root}/mlflow.db"
        _point_at(uri)
        data_dir = write(generate(N_CUSTOMERS, days=730, seed=SEED), root / "data")
        catalog = OfferCatalog()
        tables = load_tables(data_dir, offers=catalog.names)
        _train_churn(tables, root)
        _train_offers(tables, catalog, root)
        store = root / "store.sqlite"
        configs = copy_configs(root / "configs", serving=f"store: {store}\nworkers: 1\nmax_customers_per_request: 50\n")
        _CACHE["c"] = Champions(root, uri, data_dir, configs, store)
    _point_at(_CACHE["c"].uri)
    return _CACHE["c"]


@contextlib.contextmanager
def registry(uri: str):
    """MLflow pointed at ``uri`` inside the block; after it, wherever it pointed before."""
    with kept_tracking():
        _point_at(uri)
        yield uri


def _point_at(uri: str) -> None:
    """``MLFLOW_TRACKING_URI`` and MLflow's own global setting (which wins over it) both at ``uri``."""
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)


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
        _train_offers(tables, catalog, root)
        serving = ServingConfig(store=str(store))
        score_batch(serving, tables, load_models(serving, tracking_uri=uri), root / "scores.parquet", store=store)
    _CACHE["offer_only"] = Champions(root, uri, data_dir, configs, store)
    return _CACHE["offer_only"]


def _train_churn(tables, root: Path) -> None:
    from training.config import ChurnConfig
    from training.datasets import build_panel, plan_for
    from training.runs import start_tracking
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


def _train_offers(tables, catalog: OfferCatalog, root: Path) -> None:
    """``retain train-offers``' trainer, registering the offer champion: one S-learner, no tuning (seconds)."""
    from training.offers.config import OfferModelConfig
    from training.offers.pipeline import train_offers

    config = OfferModelConfig(trials=0, learners=("s",), experiment="retain-offers")
    train_offers(tables, catalog=catalog, config=config, out_dir=root / "offers")


def loaded(champ: Champions):
    """(serving config, demo tables, champion models): what the scoring tests score with."""
    from features.sources import load_tables
    from serving.config import ServingConfig
    from serving.models import load_models

    config = ServingConfig.load(champ.configs)
    return config, load_tables(champ.data_dir, offers=("free_shipping", "discount_20")), load_models(config)


def scoring_job(models, config, *, reasons: bool = False):
    """The ``ScoringJob`` of the tests: the demo as-of date, ``config`` (with its lifecycle rules), default features."""
    from serving.job import ScoringJob

    return ScoringJob(AS_OF, models, config, FeaturesConfig(), reasons=reasons)


def score_batch(config, tables, models, out: Path, *, reasons: bool = False, **kw):
    """``run_batch`` with the test defaults: demo as-of date, default configs, no MLflow, no progress bar."""
    from serving.batch import run_batch

    kw.setdefault("track", False)
    return run_batch(tables, scoring_job(models, config, reasons=reasons), out=out, progress=False, **kw)


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
