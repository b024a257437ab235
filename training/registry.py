"""Register versions and publish the champion's files; the alias ``champion`` moves only through the gate.

Consumers load ``models:/NAME@champion``. Every new version gets ``challenger``; :mod:`training.gate`
decides whether ``champion`` moves. A version whose run ended before the gate decided is marked
``interrupted``, never left undecided.

A model's local folder (a DVC output) holds the champion's files, written from the registry; a run's
own files go to ``challenger/`` beside them, each set staged and swapped in (:mod:`training.staging`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.staging import clean_staging, staging

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
TEST_CUTOFF_TAG = "test_cutoff"
DECISION_TAG, REASON_TAG = "champion_decision", "champion_reason"
SCORE_TAG, METRIC_TAG, FITTED_TAG = "gate_score", "gate_metric", "fitted_through"
CHALLENGER_DIR = "challenger"


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
