"""The champion gate: the challenger takes ``champion`` only when it beats it on rows neither was fitted on.

``champion`` moves when the challenger beats the champion on held-out rows by more than the configured
margin, or when there is no champion (a tie keeps the champion). The decision, its reason and both scores
go on the run (tags and metrics) and on the model version (tags).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.tracking import MlflowClient

from training.config import Gate
from training.evaluate import metrics
from training.registry import (
    CHAMPION,
    DECISION_TAG,
    METRIC_TAG,
    REASON_TAG,
    SCORE_TAG,
    TEST_CUTOFF_TAG,
    current_champion,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rescore:
    """Both models on the same rows, which neither was fitted on (``rows`` says which).

    ``champion`` None: there are no such rows (``rows`` says why) and the champion is kept.
    """

    champion: float | None
    challenger: float | None
    rows: str


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on ``version``: promoted or not, why, and the scores compared (no champion: None)."""

    promoted: bool
    reason: str
    version: str
    challenger_score: float
    champion_score: float | None


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


def champion_score(model_uri: str, X: pd.DataFrame, y, metric: str) -> float:
    """Score a registered model on the challenger's test rows."""
    model = mlflow.sklearn.load_model(model_uri)
    return metrics(y, model.predict_proba(X[list(model.feature_names_in_)])[:, 1])[metric]
