"""Load the champion models from the MLflow registry into :class:`serving.champions.Models`.

``load_models`` resolves ``models:/NAME@champion`` to a version, loads it once and
pulls out what scoring needs: the churn model's LightGBM booster and calibrator
(the pyfunc wrapper costs 5-8 ms a request), the offer model's boosters and spec.
It refuses, with :class:`ModelError`, when neither champion is in the registry,
when a model's signature disagrees with its booster, or when the fast path does
not reproduce the logged model on its own input example. The value model
(``modeling.value_model``) comes with the churn champion, from the ``value/``
artifacts of its run; a run without them (or no churn champion) leaves it absent.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.contract import NO_OFFER
from modeling.churn_model import ORDER_COUNT, ChurnModel, fast_calibrator
from modeling.encoding import booster_levels
from modeling.errors import ModelError, NoChampion
from modeling.offer_model import OfferModel
from modeling.prior_boosting import Prior
from serving.champions import NO_CHURN, NO_VALUE, Models
from serving.config import ServingConfig

if TYPE_CHECKING:
    from modeling.value_model import ValueModel

log = logging.getLogger(__name__)

TOLERANCE = 1e-9
VALUE_ARTIFACTS = "value"  # the value model's folder among the churn champion's run artifacts


def _resolve(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _signature_features(model_dir: Path) -> tuple[list[str], list[str], object]:
    from mlflow.models import Model

    meta = Model.load(str(model_dir))
    if meta.signature is None:
        raise ModelError(f"{model_dir}: the model has no signature; log it with its feature list")
    names = meta.signature.inputs.input_names()
    text = [n for n, t in zip(names, meta.signature.inputs.input_types(), strict=True) if str(t) == "DataType.string"]
    example = meta.load_input_example(str(model_dir))
    return names, text, example


def _churn_parts(model) -> tuple[lgb.Booster, tuple, bool, Prior | None]:
    """The LightGBM booster and calibrators inside CalibratedClassifierCV(FrozenEstimator(LGBMClassifier))."""
    calibrated = getattr(model, "calibrated_classifiers_", None)
    if not calibrated:
        raise ModelError(f"churn model is a {type(model).__name__}, expected a fitted CalibratedClassifierCV")
    boosters, calibrators = set(), []
    for part in calibrated:
        est = getattr(part.estimator, "estimator", part.estimator)  # FrozenEstimator wraps the classifier
        booster = getattr(est, "booster_", None)
        if booster is None or len(part.calibrators) != 1:
            raise ModelError("churn model: expected a binary calibrated LightGBM classifier")
        boosters.add(id(booster))
        calibrators.append(fast_calibrator(part.calibrators[0]))
    if len(boosters) != 1:
        raise ModelError("churn model: calibrators over several boosters; the fast path needs one frozen booster")
    return est.booster_, tuple(calibrators), hasattr(est, "decision_function"), getattr(est, "prior", None)


def load_churn(client, name: str, alias: str) -> ChurnModel:
    import mlflow
    import mlflow.sklearn

    version = _resolve(client, name, alias)
    if version is None:
        raise NoChampion(
            f"no {name}@{alias} in the MLflow registry at {mlflow.get_tracking_uri()}; "
            f"train and promote one first (python -m retain train-churn)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}", dst_path=tmp))
        features, text, example = _signature_features(local)
        model = mlflow.sklearn.load_model(str(local))
    booster, calibrators, raw_score, prior = _churn_parts(model)
    label = f"{name} v{version.version}"
    if list(booster.feature_name()) != features:
        raise ModelError(f"{label}: signature features differ from the booster's feature list")
    levels = booster_levels(booster, text, label)
    index = () if prior is None else tuple(features.index(c) for c in prior.columns)
    churn = ChurnModel(
        name,
        str(version.version),
        tuple(features),
        levels,
        booster,
        calibrators,
        raw_score,
        prior,
        index,
        version.run_id,
    )
    if example is not None and len(example):
        _self_check_churn(churn, model, example, label)
    return churn


def _self_check_churn(churn: ChurnModel, model, example: pd.DataFrame, label: str) -> None:
    """The fast path must reproduce the logged model on its own input example."""
    X = example[list(churn.features)].copy()
    for col in churn.levels:
        X[col] = pd.Categorical(X[col].astype("string"), categories=list(churn.levels[col]))
    reference = model.predict_proba(X)[:, 1]
    fast = churn.predict(churn.encode(example, len(example)))
    if not np.allclose(fast, reference, atol=TOLERANCE, rtol=0):
        raise ModelError(f"{label}: the booster + calibrator path disagrees with the model ({fast} vs {reference})")


def load_value(client, churn: ChurnModel) -> tuple[ValueModel | None, str | None]:
    """The value model logged under ``value/`` in the churn champion's run, or (None, why there is none)."""
    import mlflow

    from modeling.value_model import BOOSTER, ValueModel

    if churn.run_id is None or not client.list_artifacts(churn.run_id, VALUE_ARTIFACTS):
        return None, f"{NO_VALUE}: {churn.label} was trained without one; retrain it (python -m retain train-churn)"
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(run_id=churn.run_id, artifact_path=VALUE_ARTIFACTS, dst_path=tmp)
        try:
            value = ValueModel.load(local)
        except (ValueError, KeyError) as exc:
            raise ModelError(f"the value model of {churn.label} does not load: {exc}") from exc
    _check_value(value, churn.label, BOOSTER)
    return value, None


def _check_value(value: ValueModel, label: str, booster_file: str) -> None:
    """A lightgbm value model's feature list must be its booster's own, as the churn model's signature must."""
    if value.booster is not None and list(value.booster.feature_name()) != list(value.features):
        raise ModelError(f"the value model of {label}: value.json's features differ from {booster_file}'s")


def load_offer(client, name: str | None, alias: str) -> tuple[OfferModel | None, str]:
    import mlflow
    import mlflow.pyfunc

    if name is None:
        return None, f"{NO_OFFER}: no offer model configured"
    version = _resolve(client, name, alias)
    if version is None:
        log.warning("no %s@%s: every customer gets %r", name, alias, NO_OFFER)
        return None, f"{NO_OFFER}: no {name}@{alias} in the registry"
    label = f"{name} v{version.version}"
    uri = f"models:/{name}/{version.version}"
    pyfunc = mlflow.pyfunc.load_model(uri)
    inner = getattr(pyfunc.unwrap_python_model(), "model", None)
    if not isinstance(inner, OfferModel):
        raise ModelError(f"{label}: not an offer policy model (expected boosters and a spec)")
    sig = pyfunc.metadata.signature
    if sig is not None and set(sig.inputs.input_names()) != set(inner.spec["features"]):
        raise ModelError(f"{label}: signature features differ from the spec's feature list")
    return OfferModel.from_parts(inner.boosters, inner.spec, name=name, version=str(version.version)), label


def _loading(load, client, name: str | None, alias: str):
    """``load(client, name, alias)``; a registry that cannot be read or an artifact that is gone is a ModelError."""
    import mlflow

    try:
        return load(client, name, alias)
    except ModelError:
        raise
    except Exception as exc:  # sqlalchemy on a damaged registry, OSError or MlflowException on a missing artifact
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        what = f"{type(exc).__name__}: {first}"
        reason = (
            f"the champion {name}@{alias} could not be loaded ({what}); check that the MLflow registry "
            "and its artifacts are intact, or train and promote the model again"
        )
        raise ModelError(f"{reason} (MLflow registry at {mlflow.get_tracking_uri()})", reason=reason) from exc


def load_models(config: ServingConfig, *, tracking_uri: str | None = None) -> Models:
    """The champions named in ``config``; raises :class:`ModelError` with a clear message when unusable.

    Either champion may be missing from the registry, not both (:class:`NoChampion` then); a champion that is
    there but does not load or check out is always an error.
    """
    import mlflow
    from mlflow import MlflowClient

    from modeling.tracking import use_store

    use_store(tracking_uri)
    try:
        client = MlflowClient()
        client.search_registered_models(max_results=1)  # opens the store: a damaged registry fails here
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        reason = (
            f"the MLflow registry could not be read ({type(exc).__name__}: {first}); check that the registry "
            "file is intact (MLFLOW_TRACKING_URI, mlruns/mlflow.db), or train and promote the models again"
        )
        raise ModelError(f"{reason} (MLflow registry at {mlflow.get_tracking_uri()})", reason=reason) from exc
    churn, churn_note = None, f"{NO_CHURN}: no churn model configured"
    value, value_note = None, f"{NO_VALUE}: it comes with the churn model, and there is none"
    if config.churn_model is not None:
        try:
            churn, churn_note = _loading(load_churn, client, config.churn_model, config.alias), None
        except NoChampion:
            churn_note = f"{NO_CHURN}: no {config.churn_model}@{config.alias} in the registry"
    if churn is not None:
        value, value_note = _loading(lambda c, *_: load_value(c, churn), client, config.churn_model, config.alias)
    offer, note = _loading(load_offer, client, config.offer_model, config.alias)
    if churn is None and offer is None:
        reason = (
            f"nothing to score with: {churn_note} and {note.removeprefix(NO_OFFER + ': ')}; train and promote a "
            "churn model (python -m retain train-churn) or an offer model (python -m retain train-offers) first"
        )
        raise NoChampion(f"{reason} (MLflow registry at {mlflow.get_tracking_uri()})", reason=reason)
    if churn is not None and ORDER_COUNT not in churn.features:
        raise ModelError(
            f"{churn.label} does not read {ORDER_COUNT!r}, which tells buyers (scored) from prospects (not scored); "
            "retrain it on the current builders"
        )
    if churn is None:
        log.warning("%s: churn fields are null, offers come from %s", churn_note, note)
    models = Models(churn, offer, note, churn_note, value, value_note)
    log.info("loaded %s, %s and %s", models.churn_label, note, models.value_label)
    return models
