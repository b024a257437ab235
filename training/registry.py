"""Log, register and promote: the champion alias moves only through the gate.

Consumers load ``models:/NAME@champion``. Every new version gets ``challenger``;
``champion`` moves when the challenger beats the champion on held-out rows that
neither was fitted on by more than the configured margin, or when there is no
champion (a tie keeps the champion). The decision, its reason and both scores go on
the run (tags and metrics) and on the model version (tags); a version whose run
ended before the gate decided is marked ``interrupted``, never left undecided.

A model's local folder (a DVC output) holds the champion's files, written from the
registry; a run's own files go to ``challenger/`` beside them. Both are written into
a staging folder and swapped in, so a killed run leaves the previous files whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from features.config import ROOT
from modeling.tracking import pip_requirements, use_experiment
from training.config import Gate
from training.evaluate import metrics

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
TEST_CUTOFF_TAG = "test_cutoff"
DECISION_TAG, REASON_TAG = "champion_decision", "champion_reason"
SCORE_TAG, METRIC_TAG, FITTED_TAG = "gate_score", "gate_metric", "fitted_through"
PID_TAG, HOST_TAG = "retain.pid", "retain.host"
CHALLENGER_DIR = "challenger"
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


def start_tracking(experiment: str, *, uri: str | None = None, artifacts: str | None = None) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id.

    A store on this machine keeps artifacts in ``artifacts/`` beside it (the project's
    ``mlruns/artifacts/`` for the embedded store) unless ``artifacts`` says otherwise, never
    MLflow's default ``./mlruns`` under whatever folder the process started in; a team server
    keeps its own artifact location. Runs of this host left RUNNING by a killed process are
    ended as KILLED.
    """
    experiment_id = use_experiment(experiment, uri=uri, artifacts=artifacts)
    end_interrupted_runs(experiment_id)
    return experiment_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_interrupted_runs(experiment_id: str) -> list[str]:
    """End as KILLED the RUNNING runs whose process (on this host) is gone; returns their ids."""
    client = MlflowClient()
    ended = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=200):
        tags = run.data.tags
        if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
            continue
        if _alive(int(tags[PID_TAG])):
            continue
        client.set_tag(run.info.run_id, "interrupted", f"process {tags[PID_TAG]} ended without closing the run")
        client.set_terminated(run.info.run_id, status="KILLED")
        ended.append(run.info.run_id)
    if ended:
        log.warning("ended %d run(s) left RUNNING by killed processes: %s", len(ended), ", ".join(ended))
    return ended


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) during a tracked run: raised so the run and the registry are closed properly."""


@contextlib.contextmanager
def tracked_run(run_name: str, **tags: str) -> Iterator[mlflow.ActiveRun]:
    """``mlflow.start_run`` that records its process and ends as KILLED when interrupted.

    SIGTERM and SIGHUP raise :class:`Interrupted` inside the run (in the main thread), so
    ``finally`` blocks run and the run ends KILLED instead of staying RUNNING; a SIGKILL
    cannot be caught, and :func:`end_interrupted_runs` ends such runs on the next start.
    """
    previous = {}

    def stop(signum, frame):
        raise Interrupted(f"signal {signal.Signals(signum).name}")

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, stop)
    try:
        run = mlflow.start_run(run_name=run_name)
        mlflow.set_tags({PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(), **tags})
        try:
            yield run
        except (KeyboardInterrupt, SystemExit) as exc:
            mlflow.set_tag("interrupted", str(exc) or type(exc).__name__)
            mlflow.end_run(status="KILLED")
            raise
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        mlflow.end_run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_name(model: str, window: str) -> str:
    """``<model> <data window> <UTC time>``, e.g. ``churn 2025-06-05..2026-04-01 20261201T124000Z``."""
    return f"{model} {window} {time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def log_dataset(frame: pd.DataFrame, *, name: str, source: str | None, context: str, targets: str | None = None):
    """The rows a model was trained (or tested) on, as an MLflow dataset input of the active run."""
    import warnings

    from mlflow.data.sources import LocalArtifactDatasetSource

    with warnings.catch_warnings():  # the schema's note on integer columns: these rows are what was trained on
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        dataset = mlflow.data.from_pandas(
            frame,
            source=LocalArtifactDatasetSource(str(source)) if source else None,
            name=name,
            targets=targets,
        )
        mlflow.log_input(dataset, context=context)
    return dataset


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


@contextlib.contextmanager
def staged(path: Path) -> Iterator[Path]:
    """A fresh path beside ``path`` (same filesystem) that replaces it only when the block succeeds.

    A folder is swapped by two renames (old aside, new in), so ``path`` is whole before and after;
    a run killed inside the block leaves ``path`` as it was and only a hidden ``.staging-*`` beside it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".staging-{path.name}-", dir=path.parent))
    shutil.rmtree(stage)
    try:
        yield stage
        swap(stage, path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if stage.exists():
            stage.unlink()


def swap(new: Path, path: Path) -> None:
    """Put ``new`` (file or folder) at ``path``; the old one is removed after the rename."""
    if new.is_dir() and path.exists():
        old = path.parent / f".old-{path.name}-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(new, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, path)


@contextlib.contextmanager
def staging(out_dir: Path) -> Iterator[Path]:
    """A hidden folder inside ``out_dir`` whose entries replace ``out_dir``'s (one rename each) on success."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        yield stage
        publish(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(files: Path, out_dir: Path) -> None:
    """Move every entry of the staging folder ``files`` into ``out_dir``, each by rename."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for entry in sorted(files.iterdir()):
        swap(entry, out_dir / entry.name)


def clean_staging(out_dir: Path) -> None:
    """Remove what killed runs left: hidden ``.staging-*`` and ``.old-*`` entries."""
    if out_dir.is_dir():
        for entry in out_dir.iterdir():
            if entry.name.startswith((".staging-", ".old-")):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    version: str
    challenger_score: float
    champion_score: float | None


@dataclass(frozen=True)
class Rescore:
    """Both models on the same rows, which neither was fitted on (``rows`` says which).

    ``champion`` None: there are no such rows (``rows`` says why) and the champion is kept.
    """

    champion: float | None
    challenger: float | None
    rows: str


def register(
    model_uri: str,
    name: str,
    *,
    run_id: str,
    test_cutoff: str,
    metric: str | None = None,
    score: float | None = None,
    fitted_through: str | None = None,
) -> str:
    """A new version of ``name`` with alias ``challenger``; returns the version number.

    The version records what the gate compares: the held-out rows (``test_cutoff``), the held-out
    value of ``metric`` (``score``) and the last data it was fitted on (``fitted_through``).
    """
    client = MlflowClient()
    settle_undecided(name)
    tags = {"run_id": run_id, TEST_CUTOFF_TAG: test_cutoff}
    if metric is not None and score is not None:
        tags.update({METRIC_TAG: metric, SCORE_TAG: repr(float(score))})
    if fitted_through is not None:
        tags[FITTED_TAG] = fitted_through
    version = mlflow.register_model(model_uri, name, tags=tags).version
    client.set_registered_model_alias(name, CHALLENGER, version)
    return str(version)


def settle_undecided(name: str) -> list[str]:
    """Mark versions whose run ended before the gate decided as ``interrupted``; drop their challenger alias."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    settled = []
    for v in versions:
        if DECISION_TAG in v.tags:
            continue
        try:
            status = client.get_run(v.run_id).info.status if v.run_id else "FINISHED"
        except MlflowException:
            status = "DELETED"
        if status == "RUNNING":
            continue
        mark_interrupted(name, str(v.version), f"its run ended ({status}) before the champion gate decided")
        settled.append(str(v.version))
    return settled


def mark_interrupted(name: str, version: str, reason: str) -> None:
    client = MlflowClient()
    client.set_model_version_tag(name, version, DECISION_TAG, "interrupted")
    client.set_model_version_tag(name, version, REASON_TAG, reason)
    for alias in (CHALLENGER, CHAMPION):
        try:
            current = client.get_model_version_by_alias(name, alias)
        except MlflowException:
            continue
        if str(current.version) == version and alias == CHALLENGER:
            client.delete_registered_model_alias(name, alias)
    log.warning("%s v%s marked interrupted: %s", name, version, reason)


@contextlib.contextmanager
def deciding(name: str, version: str) -> Iterator[None]:
    """Whatever stops the block (an error, Ctrl-C, SIGTERM) leaves ``version`` marked, not undecided."""
    try:
        yield
    except BaseException as exc:
        tags = MlflowClient().get_model_version(name, version).tags
        if DECISION_TAG not in tags:
            mark_interrupted(name, version, f"training stopped before the gate decided: {type(exc).__name__} {exc}")
        raise


def current_champion(name: str):
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def recorded_score(champ, metric: str, test_cutoff: str) -> float | None:
    """The champion's own held-out value on these rows, when it was tested on them."""
    tags = champ.tags
    if tags.get(TEST_CUTOFF_TAG) != test_cutoff:
        return None
    if tags.get(METRIC_TAG) == metric and SCORE_TAG in tags:
        return float(tags[SCORE_TAG])
    run = MlflowClient().get_run(champ.run_id)  # versions registered before the score was a version tag
    return run.data.metrics.get(metric)


def gate(
    name: str,
    version: str,
    *,
    gate: Gate,
    test_cutoff: str,
    challenger_score: float,
    score_champion: Callable[[object], Rescore],
) -> Decision:
    """Move ``champion`` to ``version`` only if it beats the champion by more than ``gate.margin``.

    Like with like: when the champion was tested on the same held-out rows, both held-out values
    (each model before any refit) are compared; otherwise ``score_champion(champion_version)``
    scores both on the challenger's held-out rows that neither was fitted on. A tie keeps the
    champion. The decision is recorded before the alias moves.
    """
    champ = current_champion(name)
    metric = f"test_{gate.metric}"
    if champ is None:
        decision = Decision(True, "no current champion", version, challenger_score, None)
    else:
        recorded = recorded_score(champ, metric, test_cutoff)
        if recorded is not None:
            champion_score, how = recorded, f"its held-out score on the same rows ({test_cutoff})"
        else:
            rescored = score_champion(champ)
            if rescored.champion is None:  # no rows that neither model saw: nothing fair to compare
                decision = Decision(
                    False, f"champion v{champ.version} kept: {rescored.rows}", version, challenger_score, None
                )
                return _decide(name, decision)
            champion_score, challenger_score = rescored.champion, rescored.challenger
            how = f"both rescored on {rescored.rows}"
        delta = challenger_score - champion_score
        if abs(delta) <= 1e-12:
            verdict, wins = "ties", False
        else:
            wins = delta > gate.margin
            verdict = "beats" if wins else "does not beat"
        reason = (
            f"{gate.metric} {challenger_score:.4f} {verdict} champion v{champ.version} {champion_score:.4f} "
            f"({how}; margin {gate.margin:g})"
        )
        decision = Decision(wins, reason, version, challenger_score, champion_score)
    return _decide(name, decision)


def _decide(name: str, decision: Decision) -> Decision:
    _record(name, decision)
    if decision.promoted:
        MlflowClient().set_registered_model_alias(name, CHAMPION, decision.version)
    log.info("champion gate: %s (%s)", "promoted" if decision.promoted else "kept champion", decision.reason)
    return decision


def _record(name: str, decision: Decision) -> None:
    """The decision goes on the active run (tags, metrics) and on the model version (tags)."""
    tags = {DECISION_TAG: "promoted" if decision.promoted else "kept", REASON_TAG: decision.reason}
    mlflow.set_tags(tags)
    scores = {"gate_challenger_score": decision.challenger_score}
    if decision.champion_score is not None:
        scores["gate_champion_score"] = decision.champion_score
    mlflow.log_metrics(scores)
    client = MlflowClient()
    client.set_model_version_tag(name, decision.version, REASON_TAG, decision.reason)
    client.set_model_version_tag(name, decision.version, DECISION_TAG, tags[DECISION_TAG])


def describe(name: str, version: str, card: str) -> None:
    """The model card as the version's description (the MLflow UI renders it as markdown)."""
    MlflowClient().update_model_version(name, version, description=card)


def champion_files(
    name: str,
    out_dir: Path,
    files: tuple[str, ...],
    model: Callable[[object, Path], None],
    optional: tuple[str, ...] = (),
) -> str:
    """Write the champion version's files into ``out_dir`` (from its run's artifacts), swapped in.

    ``model(version, dst)`` writes its model folder. Returns the version, or "" with no champion
    (then ``out_dir`` is left as it is). ``optional`` files are skipped when a champion's run
    predates them (an old champion stays servable; its folder just lacks them).
    """
    champ = current_champion(name)
    if champ is None:
        return ""
    out_dir = Path(out_dir)
    clean_staging(out_dir)
    have = {Path(a.path).name for a in MlflowClient().list_artifacts(champ.run_id)} if optional else set()
    with staging(out_dir) as stage:
        for rel in files:
            if rel in optional and rel not in have:
                continue
            mlflow.artifacts.download_artifacts(run_id=champ.run_id, artifact_path=rel, dst_path=str(stage))
        model(champ, stage / "model")
        info = {"name": name, "version": str(champ.version), "run_id": champ.run_id}
        (stage / "champion.json").write_text(json.dumps(info, indent=1) + "\n")
    for rel in set(optional) - have:  # not another version's copy beside this champion's files
        stale = out_dir / rel
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
    return str(champ.version)


def champion_model_folder(champ, dst: Path) -> None:
    """The champion's registered MLflow model folder."""
    mlflow.artifacts.download_artifacts(f"models:/{champ.name}/{champ.version}", dst_path=str(dst))


def champion_score(model_uri: str, X: pd.DataFrame, y, metric: str) -> float:
    """Score a registered model on the challenger's test rows."""
    model = mlflow.sklearn.load_model(model_uri)
    return metrics(y, model.predict_proba(X[list(model.feature_names_in_)])[:, 1])[metric]
