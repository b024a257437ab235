"""The offer model's MLflow side: the run's record, the model card, the pyfunc and its signature, the gate.

``record_run`` logs what ``fit_and_evaluate`` decided and measured under the
active run (parameters and tags saying how the sends were held out and where a
conversion's value came from, metrics, tables, the Qini plot, the card), logs
the pyfunc, registers it as ``challenger`` and runs the champion gate on the
DR gain over the same held-out sends.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.config import OfferCatalog
from serving.offer_predictor import save_model
from training.offpolicy import plot_uplift

if TYPE_CHECKING:
    from training.offer_rows import OfferRows
    from training.offers import OfferModelConfig, OfferTrainingResult

GATE_METRIC = "test_dr_gain"


def model_card(result: OfferTrainingResult) -> str:
    """A short card: what ships and why, how each learner and policy did on the held-out sends."""
    cols = [c for c in ("dr_gain", "dr_gain_se", "ipw_gain", "ipw_gain_se", "true_gain") if c in result.policies]
    learner_cols = [c for c in ("dr_gain", "dr_gain_se", "vs_reference", "vs_reference_se", "true_gain", "fit_s")]
    return "\n".join(
        [
            "# Next-best-offer model",
            "",
            f"- Learner: {result.choice.reason if result.choice else result.learner}",
            f"- Decision: {result.fallback.reason}",
            f"- Holdout: {result.holdout['description']}",
            f"- Conversion value: {result.value.description if result.value else 'not recorded'}",
            f"- Rows: {int(result.metrics['rows']):,} sends, {int(result.metrics['heldout_rows']):,} held out",
            "",
            "## Policies on held-out sends (profit per send vs sending nothing)",
            "",
            "```",
            result.policies[cols].round(4).to_string(),
            "```",
            "",
            "## Learners (the first is the reference; vs_reference is the paired DR difference)",
            "",
            "```",
            result.learners[[c for c in learner_cols if c in result.learners]].round(4).to_string(),
            "```",
            "",
            "Caveats: values are off-policy estimates from a randomised log; when the log is not randomised",
            "in some segment the run warns and effects there rest on the outcome model.",
        ]
    )


def offer_signature(example: pd.DataFrame, output: pd.DataFrame):
    """Inputs: every feature by name, of any type (MLflow then passes a category column through, as
    ``build-features`` writes it, and the model types it itself); outputs as scored."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inputs = Schema([ColSpec(AnyType(), c, required=False) for c in example.columns])
    return ModelSignature(inputs=inputs, outputs=infer_signature(example, output).outputs)


def log_settings(rows: OfferRows, catalog: OfferCatalog, config: OfferModelConfig) -> None:
    """The settings and the log's size, before fitting (tuning trials nest under the same run)."""
    import mlflow

    mlflow.log_params({k: str(v) for k, v in config.model_dump().items()})
    mlflow.log_params({"catalog": json.dumps(catalog.model_dump()), "rows": len(rows.frame)})


def record_run(result: OfferTrainingResult, rows: OfferRows, config: OfferModelConfig, run) -> None:
    """Everything the run decided, the pyfunc, its registration and the gate; sets ``run_id`` and ``promoted``."""
    import mlflow

    from serving.offer_predictor import OfferPolicyModel, score_offers
    from training.config import Gate
    from training.registry import gate, input_example, register

    mlflow.log_params({f"lgbm_{k}": v for k, v in result.params.items()})
    mlflow.log_params(
        {
            "learner": result.learner,
            "decision": result.fallback.reason[:500],
            "holdout_kind": result.holdout["kind"],
            "holdout_description": result.holdout["description"][:500],
            "conversion_value_source": result.value.source,
            "conversion_value": result.value.description[:500],
        }
    )
    mlflow.set_tags(
        {
            "holdout": result.holdout["kind"],
            "holdout_description": result.holdout["description"],
            "conversion_value_source": result.value.source,
            "learner_choice": result.choice.reason,
        }
    )
    mlflow.log_metrics({**result.metrics, GATE_METRIC: result.metrics["shipped_dr_gain"]})
    mlflow.log_text(result.policies.to_csv(), "policies.csv")
    mlflow.log_text(result.learners.to_csv(), "learners.csv")
    mlflow.log_text(model_card(result), "model_card.md")
    mlflow.log_figure(plot_uplift(result.curves), "qini.png")
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(result.boosters, result.spec, Path(tmp) / "offer_model")
        example = input_example(rows.frame[rows.features])
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=OfferPolicyModel(),
            artifacts={"offer_model": str(folder)},
            signature=offer_signature(example, score_offers(result.boosters, result.spec, example)),
            input_example=example,
            pip_requirements=pip_requirements(),
        )
    result.run_id = run.info.run_id
    days = result.holdout["days"]
    version = register(info.model_uri, config.model_name, run_id=run.info.run_id, test_cutoff=days)
    # the churn gate compares f"test_{metric}" on the same test slice; here the metric is the DR gain
    rule = Gate(metric=GATE_METRIC.removeprefix("test_"), margin=config.gate_margin)
    decision = gate(
        config.model_name,
        version,
        gate=rule,
        test_cutoff=days,
        challenger_score=result.metrics["shipped_dr_gain"],
        score_champion=lambda uri: champion_gain(uri, result.holdout),
    )
    result.promoted = decision.promoted


def champion_gain(model_uri: str, holdout: dict) -> float:
    """DR gain per customer of a registered offer model's choices on this run's held-out campaigns."""
    import mlflow

    from training.offpolicy import dr_scores
    from training.registry import input_example

    model = mlflow.pyfunc.load_model(model_uri)
    features = model.unwrap_python_model().spec_["features"]
    chosen = model.predict(input_example(holdout["frame"][features], n=len(holdout["frame"])))["offer"].to_numpy()
    arms = list(model.unwrap_python_model().spec_["arms"])
    policy = np.array([arms.index(c) for c in chosen])
    args = holdout["reward"], holdout["logged"], holdout["propensity"], holdout["q"]
    none = np.zeros(len(policy), dtype=int)
    return float((dr_scores(policy, *args) - dr_scores(none, *args)).mean())


def pip_requirements() -> list[str]:
    """Pinned from the running environment: MLflow's inference would cost seconds per model."""
    import importlib.metadata as md

    return [f"{name}=={md.version(name)}" for name in ("mlflow", "lightgbm", "pandas", "numpy", "pydantic", "pyyaml")]
