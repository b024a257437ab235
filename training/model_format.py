"""The churn model's MLflow format: signature, input example, the code it needs and its pyfunc flavor.

A scikit-learn model (``mlflow.sklearn.load_model``, the service's fast path) whose pyfunc flavor
types text features itself and carries its own code, so ``mlflow models predict`` and ``mlflow models
serve`` work without this repository.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema

from features.config import ROOT
from modeling.tracking import pip_requirements
from training.staging import staged

# The code a churn model needs to load without this repository (copied into the model's code/ folder):
# the classifier's class, and the pyfunc loader that types text features as categories.
CHURN_CODE = ("modeling/prior_boosting.py", "modeling/churn_pyfunc.py")
CHURN_LOADER = "modeling.churn_pyfunc"
# What a calibrated LightGBM pickles into; MLflow's skops format loads only listed types.
TRUSTED_TYPES = [
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "modeling.prior_boosting.PriorBoostedLGBM",  # LightGBM boosted from BG/NBD's log-odds
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",  # Platt scaling, chosen on small calibration slices
]


def input_schema(X: pd.DataFrame, *, any_text: bool = False) -> Schema:
    """Every feature by name and required (a feature row always has them all; values may be null).

    Numbers are doubles; text features strings (JSON brings categories as text), or, with
    ``any_text``, of any type, so a category column from ``build-features`` passes as it is.
    """
    from mlflow.types.schema import AnyType

    def kind(c):
        if pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]):
            return "double"
        return AnyType() if any_text else "string"

    return Schema([ColSpec(kind(c), c, required=True) for c in X.columns])


def signature(X: pd.DataFrame) -> ModelSignature:
    """Inputs are exactly the feature list; categorical features travel as strings; output p_churn."""
    return ModelSignature(inputs=input_schema(X), outputs=Schema([ColSpec("double", "p_churn")]))


def input_example(X: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    out = X.head(n).copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].astype(object)
    return out


def code_folder(files: tuple[str, ...], dst: Path) -> list[str]:
    """Copy repository files into ``dst`` keeping their package folders; returns MLflow's ``code_paths``.

    Folders get no ``__init__.py``: they are namespace portions, so inside this repository its
    own packages still win and outside it the model's copies load.
    """
    paths = []
    for rel in files:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
        top = dst / Path(rel).parts[0]
        if str(top) not in paths:
            paths.append(str(top))
    return paths


def _churn_flavor(code_dir: Path):
    """mlflow.sklearn with a pyfunc flavor that loads through :mod:`modeling.churn_pyfunc`."""

    def save_model(path, mlflow_model, **kwargs):
        mlflow.sklearn.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
        pyfunc = mlflow_model.flavors["python_function"]
        pyfunc["loader_module"] = CHURN_LOADER
        pyfunc.pop("predict_fn", None)
        mlflow_model.save(os.path.join(path, "MLmodel"))

    return SimpleNamespace(__name__="mlflow.sklearn", save_model=save_model)


def _churn_kwargs(X: pd.DataFrame, code: list[str]) -> dict:
    return {
        "sk_model": None,
        "signature": signature(X),
        "input_example": input_example(X),
        "pip_requirements": pip_requirements(),
        "code_paths": code,
        "skops_trusted_types": TRUSTED_TYPES,
        "serialization_format": "skops",
    }


def log_model(model, X: pd.DataFrame) -> str:
    """Log a fitted churn model under the active run; returns its URI.

    A scikit-learn model (``mlflow.sklearn.load_model``, the service's fast path) whose pyfunc
    flavor types text features itself, with the code it needs, so ``mlflow models predict`` and
    ``mlflow models serve`` work without this repository.
    """
    # MLflow replays the JSON input example through pyfunc; keep its schema-conversion notes quiet.
    quiet = logging.getLogger("mlflow.models.model")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            code = code_folder(CHURN_CODE, Path(tmp))
            kwargs = {**_churn_kwargs(X, code), "sk_model": model}
            info = Model.log(artifact_path=None, name="model", flavor=_churn_flavor(Path(tmp)), **kwargs)
    finally:
        quiet.setLevel(level)
    return info.model_uri


def save_model(model, X: pd.DataFrame, path: Path) -> Path:
    """The same model as a plain MLflow folder, written beside ``path`` and renamed into place."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp, staged(path) as stage:
        code = code_folder(CHURN_CODE, Path(tmp))
        kwargs = {**_churn_kwargs(X, code), "sk_model": model}
        mlflow_model = Model()
        _churn_flavor(Path(tmp)).save_model(path=str(stage), mlflow_model=mlflow_model, **kwargs)
    return path
