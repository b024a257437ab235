"""Load the champion models from the MLflow registry and expose their hot path.

``load_models`` resolves ``models:/NAME@champion`` to a version, loads it once and
pulls out what scoring needs: the churn model's LightGBM booster and calibrator
(the pyfunc wrapper costs 5-8 ms a request), the offer model's boosters and spec.
It refuses, with :class:`ModelError`, when neither champion is in the registry,
when a model's signature disagrees with its booster, or when the fast path does
not reproduce the logged model on its own input example. ``Models.check_features``
compares the feature list with what the builders produced (the snapshot store or
a batch build). Either model may be absent, not both: without a churn champion
every churn field is null and ``churn_note`` says why; without an offer champion
the scorer recommends ``none`` and ``offer_note`` says why. The value model
(``serving.value_model``) comes with the churn champion, from the ``value/``
artifacts of its run; a run without them (or no churn champion) leaves every value
field null and ``value_note`` says why.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.config import OfferCatalog
from features.contract import NO_OFFER
from features.value import VALUE_COLUMNS
from serving.config import ServingConfig
from serving.offer_predictor import ARM_COLUMN, choose, eligible, incremental_profit, order_values, score_offers
from serving.prior_boosting import Prior

if TYPE_CHECKING:
    from serving.value_model import ValueModel

log = logging.getLogger(__name__)

TOLERANCE = 1e-9
NO_CHURN = "no churn model"  # how churn_model_version starts when there is none
NO_VALUE = "no value model"  # how value_model_version starts when there is none
VALUE_ARTIFACTS = "value"  # the value model's folder among the churn champion's run artifacts
ORDER_COUNT = "sales_orders_all"  # orders before the as-of date: 0 or missing = not a buyer, no churn score


class ModelError(RuntimeError):
    """A champion is missing, does not load or does not fit the features; the service refuses to start.

    ``reason`` is the message without the registry's address, fit to show over HTTP.
    """

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


class NoChampion(ModelError):
    """The registry holds no champion under a configured name (or no model at all to score with)."""


def _levels(booster: lgb.Booster, categorical: list[str], what: str) -> dict[str, dict[str, int]]:
    """Category -> code per categorical feature, in the booster's own (training) order."""
    cats = booster.pandas_categorical or []
    if len(cats) != len(categorical):
        raise ModelError(
            f"{what}: {len(categorical)} text features {categorical} but the booster knows "
            f"{len(cats)} categorical columns; the model and its signature disagree"
        )
    return {name: {str(v): i for i, v in enumerate(levels)} for name, levels in zip(categorical, cats, strict=True)}


def _column(columns: Mapping, name: str, n: int):
    if name in columns:
        return columns[name]
    return [None] * n


def encode(columns: Mapping, n: int, features: Iterable[str], levels: Mapping[str, Mapping[str, int]]) -> np.ndarray:
    """Feature columns -> the float matrix LightGBM sees (categories as the booster's codes, unknown -> NaN).

    ``columns`` maps a feature name to its values: a DataFrame, or a dict of lists
    (the HTTP path). An absent feature is missing for every row. A value that is
    not a number where the model wants one raises ValueError naming the feature.
    """
    features = list(features)
    X = np.empty((n, len(features)), dtype=np.float64)
    frame = isinstance(columns, pd.DataFrame)
    if not frame:  # small requests: one conversion for all numeric columns
        numeric = [j for j, f in enumerate(features) if f not in levels]
        try:
            X[:, numeric] = np.array([_column(columns, features[j], n) for j in numeric], dtype=np.float64).T
        except (TypeError, ValueError):
            numeric = []  # find and name the offending feature below
        done = set(numeric)
    else:
        done = set()
    for j, name in enumerate(features):
        if j in done:
            continue
        values = _column(columns, name, n)
        lookup = levels.get(name)
        if lookup is None:
            if isinstance(values, pd.Series):
                X[:, j] = pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                try:
                    X[:, j] = np.asarray(values, dtype=np.float64)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"feature {name!r}: expected a number or null ({exc})") from exc
        elif isinstance(values, pd.Series) and n > 64:
            codes = pd.Categorical(values.astype("string"), categories=list(lookup)).codes
            X[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            get, nan = lookup.get, np.nan
            X[:, j] = [get(v, nan) if type(v) is str else (nan if _null(v) else get(str(v), nan)) for v in values]
    return X


def _null(v) -> bool:
    return v is None or (isinstance(v, float) and v != v) or v is pd.NA


@dataclass(frozen=True)
class Interpolated:
    """A fitted IsotonicRegression(out_of_bounds="clip") as one ``np.interp`` (sklearn's predict costs ~0.5 ms)."""

    x: np.ndarray
    y: np.ndarray

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(raw, self.x, self.y)


def fast_calibrator(calibrator):
    """The same mapping without sklearn's per-call input checks, where we know it exactly; else unchanged."""
    from sklearn.isotonic import IsotonicRegression

    exact = isinstance(calibrator, IsotonicRegression) and calibrator.out_of_bounds == "clip"
    if exact and calibrator.increasing_ and len(calibrator.X_thresholds_) > 1:
        return Interpolated(calibrator.X_thresholds_.astype(float), calibrator.y_thresholds_.astype(float))
    return calibrator


@dataclass(frozen=True)
class ChurnModel:
    """The churn champion's hot path: booster -> calibrator, plus contributions for reasons."""

    name: str
    version: str
    features: tuple[str, ...]
    levels: dict[str, dict[str, int]]
    booster: lgb.Booster
    calibrators: tuple = ()
    raw_score: bool = True  # sklearn calibrates decision_function (log-odds) when the classifier has one
    prior: Prior | None = None  # the log-odds the trees were boosted from (serving.prior_boosting)
    prior_index: tuple[int, ...] = ()  # the prior's columns in ``features``
    run_id: str | None = None  # the training run (its ``value/`` artifacts hold the value model)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def encode(self, columns: Mapping, n: int) -> np.ndarray:
        return encode(columns, n, self.features, self.levels)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Calibrated churn probability; the mean over calibrators as CalibratedClassifierCV does."""
        threads = {"num_threads": 1} if len(X) < 1000 else {}
        raw = self.booster.predict(X, raw_score=self.raw_score, **threads)
        if self.prior is not None:
            raw = self.prior.tree_weight * raw + self.prior.log_odds(self._prior_inputs(X))
        return np.mean([c.predict(raw) for c in self.calibrators], axis=0)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature SHAP contributions to the log-odds, shape (n, features); the bias (trees' and the
        prior's constant) left out."""
        out = self.booster.predict(X, pred_contrib=True)[:, :-1]
        if self.prior is not None:
            out = self.prior.tree_weight * out
            out[:, list(self.prior_index)] += self.prior.terms(self._prior_inputs(X))
        return out

    def _prior_inputs(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return {name: X[:, j] for name, j in zip(self.prior.columns, self.prior_index, strict=True)}


@dataclass(frozen=True)
class _Term:
    booster: int
    arm_code: int | None
    weight: float


@dataclass(frozen=True)
class OfferModel:
    """The offer champion: per-arm conversion from LightGBM boosters, then incremental profit per offer."""

    name: str
    version: str
    boosters: tuple[lgb.Booster, ...]
    spec: dict
    catalog: OfferCatalog
    inputs: tuple[tuple[str, ...], ...]  # each booster's feature order
    levels: tuple[dict[str, dict[str, int]], ...]
    terms: dict[str, tuple[_Term, ...]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.spec["features"])

    @property
    def offers(self) -> tuple[str, ...]:
        return tuple(self.spec["arms"][1:])

    def arm_proba(self, columns: Mapping, n: int) -> np.ndarray:
        """P(convert | x, arm), shape (n, arms): the numpy twin of ``offer_predictor.predict_arm_proba``.

        All arm codes a booster is asked about go through it in one stacked call (one C call, not one per arm).
        """
        wanted: dict[int, list[int | None]] = {}
        for arm in self.spec["arms"]:
            for term in self.terms[arm]:
                codes = wanted.setdefault(term.booster, [])
                if term.arm_code not in codes:
                    codes.append(term.arm_code)
        cache: dict[tuple[int, int | None], np.ndarray] = {}
        for b, codes in wanted.items():
            X = encode(columns, n, self.inputs[b], self.levels[b])
            booster = self.boosters[b]
            if ARM_COLUMN not in self.inputs[b]:
                cache.update({(b, code): self._predict(booster, X) for code in codes})
                continue
            arm_col = self.inputs[b].index(ARM_COLUMN)
            if n >= 1000:  # big batches: set the arm column in place, one call per arm (no copies)
                for code in codes:
                    X[:, arm_col] = np.nan if code is None else code
                    cache[(b, code)] = self._predict(booster, X)
                continue
            X = np.tile(X, (len(codes), 1))  # small requests: one stacked call instead of one per arm
            for k, code in enumerate(codes):
                X[k * n : (k + 1) * n, arm_col] = np.nan if code is None else code
            pred = self._predict(booster, X)
            cache.update({(b, code): pred[k * n : (k + 1) * n] for k, code in enumerate(codes)})
        out = np.zeros((n, len(self.spec["arms"])))
        for j, arm in enumerate(self.spec["arms"]):
            for term in self.terms[arm]:
                out[:, j] += term.weight * cache[(term.booster, term.arm_code)]
        return np.clip(out, 0.0, 1.0)

    @staticmethod
    def _predict(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
        return booster.predict(X, num_threads=1) if len(X) < 1000 else booster.predict(X)

    def _numbers(self, columns: Mapping, key: str, n: int) -> np.ndarray | None:
        col = self.spec.get(key)
        if not col or col not in columns:
            return None
        values = columns[col]
        if isinstance(values, pd.Series):
            return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return np.array([np.nan if _null(v) else v for v in values], dtype=np.float64)

    def order_values(self, columns: Mapping, n: int) -> np.ndarray:
        """``offer_predictor.order_values`` without building a DataFrame: own average order, else the default."""
        if isinstance(columns, pd.DataFrame):
            return order_values(columns, self.spec)
        values = self._numbers(columns, "order_value_feature", n)
        default = self.spec["default_order_value"]
        if values is None:
            return np.full(n, default)
        return np.where(np.isfinite(values) & (values > 0), values, default)

    def score(self, columns: Mapping, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(incremental profit per offer (n, offers), chosen arm name per row)."""
        proba = self.arm_proba(columns, n)
        value = self.order_values(columns, n)
        profit = incremental_profit(proba, value, self.catalog)
        arms = np.array(self.spec["arms"], dtype=object)
        constant = self.spec.get("constant_offer")
        if constant is not None:  # personalising did not beat one offer for everyone
            return profit, np.full(n, constant, dtype=object)
        counts = self._numbers(columns, "order_count_feature", n)
        return profit, arms[choose(profit, eligible(counts, self.catalog))]


@dataclass(frozen=True)
class Models:
    """What every scoring path uses: the churn and offer champions, either one possibly absent (not both)."""

    churn: ChurnModel | None
    offer: OfferModel | None
    offer_note: str  # the offer model's label, or why there is none
    churn_note: str | None = None  # why there is no churn model (None when there is one)
    value: ValueModel | None = None  # expected spend over the horizon, from the churn champion's run
    value_note: str | None = None  # why there is no value model (None when there is one)

    def __post_init__(self):
        if self.churn is None and self.offer is None:
            raise NoChampion(f"no model to score with: {self.churn_note}; {self.offer_note}")
        if self.churn is None and not self.churn_note:
            raise ValueError("Models without a churn model need churn_note saying why")
        if self.value is None and not self.value_note:
            raise ValueError("Models without a value model need value_note saying why")

    @property
    def churn_label(self) -> str:
        """The churn model's label, or why there is none (what outputs carry as churn_model_version)."""
        return self.churn.label if self.churn is not None else str(self.churn_note)

    @property
    def value_label(self) -> str:
        """The value model (its kind and the churn version it came with), or why there is none."""
        if self.value is None:
            return str(self.value_note)
        return f"{self.value.kind} value model of {self.churn_label}"

    @property
    def versions(self) -> dict[str, str]:
        return {"churn": self.churn_label, "offer": self.offer_note, "value": self.value_label}

    @property
    def features(self) -> tuple[str, ...]:
        """Every feature any model reads, churn model's order first."""
        churn = () if self.churn is None else self.churn.features
        extra = [] if self.offer is None else [f for f in self.offer.features if f not in churn]
        return (*churn, *extra)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every column scoring reads: the features, then the value model's inputs and the value columns
        (``features.value``) stored beside them."""
        if self.value is None:
            return self.features
        return tuple(dict.fromkeys((*self.features, *self.value.features, *VALUE_COLUMNS)))

    def check_features(self, columns: Iterable[str], *, source: str) -> None:
        """Refuse when the builders' columns differ from a model's feature list (names both sides)."""
        have = set(columns)
        churn = [] if self.churn is None else [(self.churn.label, self.churn.features)]
        value = [] if self.value is None else [(self.value_label, self.inputs[len(self.features) :])]
        for label, wanted in (*churn, *self._offer_features(), *value):
            missing = [f for f in wanted if f not in have]
            if missing:
                raise ModelError(
                    f"{label} expects {len(wanted)} features but {source} lacks {len(missing)}: {missing[:10]}; "
                    "retrain the model on the current builders or rebuild the features"
                )
        extra = sorted(have - set(self.inputs))
        if extra:
            log.warning("%s has %d columns no model reads (first: %s)", source, len(extra), extra[:5])

    def _offer_features(self):
        return [] if self.offer is None else [(self.offer.label, self.offer.features)]


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
    levels = _levels(booster, text, label)
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

    from serving.value_model import BOOSTER, ValueModel

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
    inner = pyfunc.unwrap_python_model()
    boosters, spec = list(getattr(inner, "boosters_", [])), getattr(inner, "spec_", None)
    if not boosters or spec is None:
        raise ModelError(f"{label}: not an offer policy model (expected boosters and a spec)")
    sig = pyfunc.metadata.signature
    if sig is not None and set(sig.inputs.input_names()) != set(spec["features"]):
        raise ModelError(f"{label}: signature features differ from the spec's feature list")
    inputs, levels = [], []
    for i, b in enumerate(boosters):
        names = tuple(b.feature_name())
        unknown = [f for f in names if f not in spec["features"] and f != ARM_COLUMN]
        if unknown:
            raise ModelError(f"{label}: booster {i} reads {unknown[:5]}, not in the spec's features")
        inputs.append(names)
        levels.append(_levels(b, [f for f in names if f in spec["categories"]], f"{label} booster {i}"))
    terms = {
        arm: tuple(_Term(t["booster"], t["arm_code"], float(t["weight"])) for t in spec["terms"][arm])
        for arm in spec["arms"]
    }
    offer = OfferModel(
        name,
        str(version.version),
        tuple(boosters),
        spec,
        OfferCatalog.model_validate(spec["catalog"]),
        tuple(inputs),
        tuple(levels),
        terms,
    )
    example = _offer_example(uri)
    if example is not None and len(example):
        reference = score_offers(boosters, spec, example)
        profit, chosen = offer.score(example, len(example))
        ref_profit = reference[[f"profit_{o}" for o in offer.offers]].to_numpy()
        if not (np.allclose(profit, ref_profit, atol=1e-9) and (chosen == reference["offer"].to_numpy()).all()):
            raise ModelError(f"{label}: the fast offer path disagrees with the model on its input example")
    return offer, label


def _offer_example(uri: str) -> pd.DataFrame | None:
    import mlflow
    from mlflow.models import Model

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(f"{uri}/MLmodel", dst_path=tmp)
        folder = Path(local).parent
        meta = Model.load(local)
        if meta.saved_input_example_info is None:
            return None
        name = meta.saved_input_example_info["artifact_path"]
        mlflow.artifacts.download_artifacts(f"{uri}/{name}", dst_path=tmp)
        return meta.load_input_example(str(folder))


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

    from features.runtime import quiet_telemetry
    from features.runtime import tracking_uri as default_uri

    quiet_telemetry()
    mlflow.set_tracking_uri(tracking_uri or default_uri())
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
