"""The next-best-offer model: LightGBM boosters combined per arm, scored one way by training, serving and MLflow.

No standard MLflow flavour holds several boosters combined per offer, so the fitted uplift learner is
stored as plain booster text plus a JSON spec (which boosters, with which weights, make each arm's
conversion probability). :class:`OfferModel` is the only predictor: the uplift learners evaluate with
it, the service and batch score with it, and the MLflow pyfunc (:class:`OfferPolicyModel`) wraps it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd

from features.config import OfferCatalog
from modeling.economics import choose, eligible, incremental_profit
from modeling.encoding import booster_levels, encode, is_null
from modeling.errors import ModelError

ARM_COLUMN = "offer_arm"  # the S-learner's extra input: the arm's index
SPEC_FILE = "spec.json"
STACKED = 1000  # below this many rows, all arm codes a booster is asked about go through it in one call


@dataclass(frozen=True)
class _Term:
    booster: int
    arm_code: int | None
    weight: float


@dataclass(frozen=True)
class OfferModel:
    """Per-arm conversion from LightGBM boosters, then incremental profit per offer and the chosen arm."""

    boosters: tuple[lgb.Booster, ...]
    spec: dict
    inputs: tuple[tuple[str, ...], ...]  # each booster's feature order
    levels: tuple[dict[str, dict[str, int]], ...]
    terms: dict = field(default_factory=dict)
    name: str = "offer model"
    version: str = ""

    @classmethod
    def from_parts(cls, boosters, spec: dict, *, name: str = "offer model", version: str = "") -> OfferModel:
        """Check the boosters against the spec and index them; ``spec["categories"]`` names the text features."""
        label = f"{name} v{version}" if version else name
        features = spec.get("features")
        inputs, levels = [], []
        for i, b in enumerate(boosters):
            names = tuple(b.feature_name())
            unknown = [f for f in names if features is not None and f not in features and f != ARM_COLUMN]
            if unknown:
                raise ModelError(f"{label}: booster {i} reads {unknown[:5]}, not in the spec's features")
            inputs.append(names)
            text = [f for f in names if f in spec.get("categories", {})]
            levels.append(booster_levels(b, text, f"{label} booster {i}"))
        terms = {
            arm: tuple(_Term(t["booster"], t["arm_code"], float(t["weight"])) for t in spec["terms"][arm])
            for arm in spec["arms"]
        }
        return cls(tuple(boosters), spec, tuple(inputs), tuple(levels), terms, name, version)

    @classmethod
    def load(cls, path: str | Path, **label) -> OfferModel:
        path = Path(path)
        spec = json.loads((path / SPEC_FILE).read_text())
        boosters = [lgb.Booster(model_str=(path / f"booster_{i}.txt").read_text()) for i in range(spec["n_boosters"])]
        return cls.from_parts(boosters, spec, **label)

    def save(self, path: str | Path) -> Path:
        """Write the boosters as text and the spec as JSON into a folder."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for i, booster in enumerate(self.boosters):
            (path / f"booster_{i}.txt").write_text(booster.model_to_string())
        (path / SPEC_FILE).write_text(json.dumps({**self.spec, "n_boosters": len(self.boosters)}, indent=1))
        return path

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.spec["features"])

    @property
    def offers(self) -> tuple[str, ...]:
        return tuple(self.spec["arms"][1:])

    @property
    def catalog(self) -> OfferCatalog:
        return OfferCatalog.model_validate(self.spec["catalog"])

    def arm_proba(self, columns: Mapping, n: int) -> np.ndarray:
        """P(convert | x, arm), shape (n, arms); arm 0 is 'none'. Each arm's probability is a weighted sum of
        booster outputs (a classifier's probability or a regressor's effect), clipped to [0, 1]."""
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
                cache.update({(b, code): _predict(booster, X) for code in codes})
                continue
            arm_col = self.inputs[b].index(ARM_COLUMN)
            if n >= STACKED:  # big batches: set the arm column in place, one call per arm (no copies)
                for code in codes:
                    X[:, arm_col] = np.nan if code is None else code
                    cache[(b, code)] = _predict(booster, X)
                continue
            X = np.tile(X, (len(codes), 1))  # small requests: one stacked call instead of one per arm
            for k, code in enumerate(codes):
                X[k * n : (k + 1) * n, arm_col] = np.nan if code is None else code
            pred = _predict(booster, X)
            cache.update({(b, code): pred[k * n : (k + 1) * n] for k, code in enumerate(codes)})
        out = np.zeros((n, len(self.spec["arms"])))
        for j, arm in enumerate(self.spec["arms"]):
            for term in self.terms[arm]:
                out[:, j] += term.weight * cache[(term.booster, term.arm_code)]
        return np.clip(out, 0.0, 1.0)

    def order_values(self, columns: Mapping, n: int) -> np.ndarray:
        return order_values(columns, self.spec, n)

    def score(self, columns: Mapping, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P(convert | arm) (n, arms), incremental profit per offer (n, offers), chosen arm name per row)."""
        proba = self.arm_proba(columns, n)
        catalog = self.catalog
        profit = incremental_profit(proba, self.order_values(columns, n), catalog)
        constant = self.spec.get("constant_offer")
        if constant is not None:  # personalising did not beat one offer for everyone on held-out data
            return proba, profit, np.full(n, constant, dtype=object)
        counts = _numbers(columns, self.spec.get("order_count_feature"), n)
        arms = np.array(self.spec["arms"], dtype=object)
        return proba, profit, arms[choose(profit, eligible(counts, catalog))]

    def table(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per customer: each arm's conversion probability, each offer's incremental profit, the chosen offer."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ValueError(f"offer model input: missing feature column(s) {missing[:10]}")
        proba, profit, chosen = self.score(frame, len(frame))
        arms = self.spec["arms"]
        out = pd.DataFrame({f"p_{a}": proba[:, j] for j, a in enumerate(arms)}, index=frame.index)
        for k, name in enumerate(arms[1:]):
            out[f"profit_{name}"] = profit[:, k]
        out["offer"] = chosen
        return out


def order_values(columns: Mapping, spec: dict, n: int | None = None) -> np.ndarray:
    """Each customer's expected order value: their own average order, else the training average."""
    n = len(columns) if n is None else n
    values = _numbers(columns, spec.get("order_value_feature"), n)
    default = spec["default_order_value"]
    if values is None:
        return np.full(n, default)
    return np.where(np.isfinite(values) & (values > 0), values, default)


def _predict(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    return booster.predict(X, num_threads=1) if len(X) < STACKED else booster.predict(X)


def _numbers(columns: Mapping, name: str | None, n: int) -> np.ndarray | None:
    if not name or name not in columns:
        return None
    values = columns[name]
    if isinstance(values, pd.Series):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.array([np.nan if is_null(v) else v for v in values], dtype=np.float64)


class OfferPolicyModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: ``predict(features)`` returns :meth:`OfferModel.table`."""

    def load_context(self, context) -> None:
        self.model = OfferModel.load(context.artifacts["offer_model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.table(model_input)
