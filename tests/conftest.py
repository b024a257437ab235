"""Tiny hand-written tables whose features can be computed by hand; where MLflow points, put back after each test.

Tests point ``MLFLOW_TRACKING_URI`` (and MLflow's own global tracking URI and active experiment) at their
stores, and ``RETAIN_CONFIGS`` at their settings; left set, they would send a later test to the wrong store.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

CUTOFF = "2024-05-10"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TRACKING_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "RETAIN_CONFIGS")


def _tracking_state() -> tuple[dict[str, str | None], str | None, str | None]:
    """The variables in :data:`TRACKING_ENV`, MLflow's global tracking URI and active experiment (None unset).

    MLflow keeps the latter two in module globals with no public getter for "unset" (``get_tracking_uri`` falls
    back to the environment), so they are read where MLflow keeps them; an MLflow not yet imported has none.
    """
    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    fluent = sys.modules.get("mlflow.tracking.fluent")
    return (
        {k: os.environ.get(k) for k in TRACKING_ENV},
        utils._tracking_uri if utils else None,
        fluent._active_experiment_id if fluent else None,
    )


def _restore(state: tuple[dict[str, str | None], str | None, str | None]) -> None:
    env, uri, experiment = state
    if "mlflow" in sys.modules:
        import mlflow
        from mlflow.tracking import fluent

        mlflow.set_tracking_uri(uri)  # also sets or clears MLFLOW_TRACKING_URI, so the environment comes after
        fluent._active_experiment_id = experiment
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_SESSION_START = _tracking_state()


@contextlib.contextmanager
def kept_tracking():
    """Inside the block tests may point MLflow and ``RETAIN_CONFIGS`` anywhere; after it, all is as before."""
    before = _tracking_state()
    try:
        yield
    finally:
        _restore(before)


@pytest.fixture(autouse=True)
def _tracking_per_test():
    """What a test points at ends with it (a module fixture's pointing, set before the test, stays)."""
    with kept_tracking():
        yield


@pytest.fixture(autouse=True, scope="module")
def _tracking_per_module():
    """What a module's fixtures point at (``serving_champions.champions``) ends with the module."""
    yield
    _restore(_SESSION_START)


def copy_configs(folder: Path, **files: str) -> Path:
    """The repository's settings files in ``folder``, with ``files`` (``serving="workers: 1"``) written over them."""
    folder.mkdir(parents=True, exist_ok=True)
    for src in CONFIGS.glob("*.yaml"):
        (folder / src.name).write_text(src.read_text())
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder


def tiny_frames() -> dict[str, pd.DataFrame]:
    """Three customers; c signs up after the cutoff, so only a and b are scored."""
    return {
        "customers": pd.DataFrame(
            {
                "customer_id": ["a", "b", "c"],
                "signed_up_at": ["2024-01-01", "2024-02-01", "2024-06-01"],
                "region": ["north", "south", "north"],
                "household_income": [50_000, 80_000, 20_000],
                "gender": ["f", "m", "f"],
                "age": [30, 45, 22],
                "Loyalty Tier": ["gold", "silver", "gold"],
                "newsletter opt-in?": [1, 0, 1],
            }
        ),
        "orders": pd.DataFrame(
            {
                "order_id": ["o1", "o2", "o3", "o4", "o5"],
                "customer_id": ["a", "a", "b", "a", "b"],
                "ordered_at": ["2024-03-01", "2024-04-01", "2024-04-15", "2024-05-10", "2024-06-01"],
                "amount": [10.0, 20.0, 30.0, 40.0, 50.0],
                "discount_amount": [0.0, 5.0, 0.0, 0.0, 0.0],
                "shipping_fee": [0.0, 4.0, 4.0, 0.0, 4.0],
                "category": ["shoes", "bags", "shoes", "shoes", "bags"],
                "n_items": [1, 2, 3, 1, 1],
            }
        ),
        "events": pd.DataFrame(
            {
                "customer_id": ["a", "a", "a", "b", "b", "b", "a"],
                "occurred_at": [
                    "2024-04-30 10:00",
                    "2024-04-30 11:00",
                    "2024-05-01 09:00",
                    "2024-04-01 08:00",
                    "2024-04-02 08:00",
                    "2024-04-15 09:00",
                    "2024-05-10 00:00",
                ],
                "event_type": [
                    "visit",
                    "add_to_cart",
                    "email_sent",
                    "email_sent",
                    "email_open",
                    "add_to_cart",
                    "visit",
                ],
            }
        ),
        "reviews": pd.DataFrame(
            {
                "customer_id": ["a", "a", "b"],
                "created_at": ["2024-03-05", "2024-04-05", "2024-05-20"],
                "rating": [4, 2, 5],
                "sentiment": [0.5, -0.3, 0.9],
            }
        ),
        "interests": pd.DataFrame({"customer_id": ["a", "a", "b"], "interest": ["running", "yoga", "running"]}),
        "offers": pd.DataFrame(
            {
                "customer_id": ["a", "b"],
                "sent_at": ["2024-04-20", "2024-04-20"],
                "offer": ["free_shipping", "none"],
                "propensity": [0.5, 0.5],
                "converted": [0, 1],
                "revenue": [0.0, 30.0],
            }
        ),
    }


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    return tiny_frames()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The tiny tables written as CSV files, one per table."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name, frame in tiny_frames().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder
