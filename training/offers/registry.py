"""The offer model's MLflow side: the run's record, the pyfunc and its signature, registration and the gate.

``record_run`` logs what the evaluation decided and measured under the active run (parameters and tags
saying how the sends were held out and where a conversion's value came from, the campaign log as a
dataset input, metrics, the files of ``outputs``), logs the pyfunc (as code, with the code it needs, so
plain MLflow loads it), registers it as ``challenger`` and runs the champion gate on the DR gain over
held-out sends that neither model was fitted on.
"""

from __future__ import annotations

import json
import tempfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.config import ROOT, OfferCatalog
from features.contract import OFFERS
from modeling.offer_model import OfferModel
from modeling.tracking import pip_requirements
from training.offers.dataset import ROW, OfferRows
from training.offers.holdout import send_keys
from training.offers.model_card import model_card
from training.offers.offpolicy import dr_scores
from training.offers.outputs import write_files

if TYPE_CHECKING:
    from training.offers.config import OfferModelConfig
    from training.offers.evaluation import HeldOut
    from training.offers.pipeline import OfferTrainingResult

GATE_METRIC = "test_dr_gain"
PYFUNC_FILE = "modeling/offer_pyfunc.py"  # models-from-code: the pyfunc, no pickled class
# what the pyfunc imports, copied into the model's code/ folder
OFFER_CODE = (
    "modeling/offer_model.py",
    "modeling/economics.py",
    "modeling/encoding.py",
    "modeling/errors.py",
    "features/config.py",
    "features/contract.py",
)


def offer_signature(example: pd.DataFrame, output: pd.DataFrame):
    """Inputs: every feature by name, required (as for the churn model); numbers as doubles, text features of
    any type (a category column passes through as ``build-features`` writes it; the model types it itself)."""
    from mlflow.models import ModelSignature, infer_signature

    from training.model_format import input_schema

    return ModelSignature(inputs=input_schema(example, any_text=True), outputs=infer_signature(example, output).outputs)


def log_settings(rows: OfferRows, catalog: OfferCatalog, config: OfferModelConfig) -> None:
    """The settings and the log's size, before fitting (tuning trials nest under the same run)."""
    import mlflow

    mlflow.log_params({k: str(v) for k, v in config.model_dump().items()})
    mlflow.log_params({"catalog": json.dumps(catalog.model_dump()), "rows": len(rows.frame)})


def campaign_window(rows: OfferRows) -> str:
    """First..last campaign day of the log, for the run name."""
    sent = pd.to_datetime(rows.frame[OFFERS.sent_at])
    return f"{sent.min():%Y-%m-%d}..{sent.max():%Y-%m-%d}"


def held_out_key(holdout: HeldOut) -> str:
    """Names the held-out sends for the gate: their days and a checksum of which sends with which outcomes.

    Two runs share a recorded score only when they held out these very sends (the same days of another log
    are other sends).
    """
    keys = send_keys(holdout.frame).to_numpy()
    outcome = holdout.frame[OFFERS.converted].astype(int).to_numpy()
    order = np.argsort(keys, kind="stable")
    text = "\n".join(f"{k}:{v}" for k, v in zip(keys[order], outcome[order], strict=True))
    return f"{holdout.days} ({len(keys):,} sends, crc32 {zlib.crc32(text.encode()):08x})"


def fitted_through(result: OfferTrainingResult, rows: OfferRows, config: OfferModelConfig) -> str:
    """The last send the registered model was fitted on: every send when refit on all, else the training sends."""
    frame = rows.frame
    fitted = frame if config.refit_on_all else frame[~frame[ROW].isin(result.holdout.frame[ROW])]
    return pd.to_datetime(fitted[OFFERS.sent_at]).max().isoformat()


def record_run(result: OfferTrainingResult, rows: OfferRows, config: OfferModelConfig, run, *, source=None) -> None:
    """Everything the run decided, the pyfunc, its registration and the gate; sets ``run_id``, ``promoted``, ``gate``."""
    import mlflow

    from training.config import Gate
    from training.gate import gate
    from training.model_format import code_folder, input_example
    from training.registry import TEST_CUTOFF_TAG, deciding, describe, register
    from training.runs import log_dataset

    judged, holdout = result.evaluation, result.holdout
    mlflow.log_params({f"lgbm_{k}": v for k, v in result.params.items()})
    mlflow.log_params(
        {
            "learner": judged.learner,
            "decision": judged.fallback.reason[:500],
            "holdout_kind": holdout.kind,
            "holdout_description": holdout.description[:500],
            "conversion_value_source": result.value.source,
            "conversion_value": result.value.description[:500],
        }
    )
    days = held_out_key(holdout)
    mlflow.set_tags(
        {
            TEST_CUTOFF_TAG: days,
            "holdout": holdout.kind,
            "holdout_description": holdout.description,
            "conversion_value_source": result.value.source,
            "learner_choice": judged.choice.reason,
        }
    )
    log_dataset(
        rows.frame[[*rows.features, OFFERS.offer, OFFERS.converted]],
        name="offers-log",
        source=source,
        context="training",
        targets=OFFERS.converted,
    )
    mlflow.log_metrics({**result.metrics, GATE_METRIC: result.metrics["shipped_dr_gain"]})
    result.run_id = run.info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = OfferModel.from_parts(result.boosters, result.spec)
        folder = model.save(tmp / "offer_model")
        example = input_example(rows.frame[rows.features])
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ROOT / PYFUNC_FILE),
            artifacts={"offer_model": str(folder)},
            code_paths=code_folder(OFFER_CODE, tmp / "code"),
            signature=offer_signature(example, model.table(example)),
            input_example=example,
            pip_requirements=pip_requirements(),
        )
        mlflow.log_artifacts(str(write_files(result, tmp / "files")))  # before the gate: a champion has them
    score = result.metrics["shipped_dr_gain"]
    version = register(
        info.model_uri,
        config.model_name,
        run_id=run.info.run_id,
        test_cutoff=days,
        metric=GATE_METRIC,
        score=score,
        fitted_through=fitted_through(result, rows, config),
    )
    rule = Gate(metric=GATE_METRIC.removeprefix("test_"), margin=config.gate_margin)
    with deciding(config.model_name, version):
        decision = gate(
            config.model_name,
            version,
            gate=rule,
            test_cutoff=days,
            challenger_score=score,
            score_champion=lambda champ: rescore(champ, result),
        )
    result.promoted, result.gate = decision.promoted, decision.reason
    with tempfile.TemporaryDirectory() as tmp:  # the same files, now with the gate's decision
        files = write_files(result, Path(tmp))
        mlflow.log_artifact(str(files / "metrics.json"))
        mlflow.log_artifact(str(files / "model_card.md"))
    describe(config.model_name, version, model_card(result))


def rescore(champ, result: OfferTrainingResult):
    """Champion and challenger on this run's held-out sends after the last send the champion was fitted on."""
    from training.gate import Rescore
    from training.registry import FITTED_TAG

    held = result.holdout.frame
    sent = pd.to_datetime(held[OFFERS.sent_at])
    through = champ.tags.get(FITTED_TAG)
    if through is None:
        mask = np.ones(len(held), dtype=bool)
        rows = f"all {len(held):,} held-out sends (v{champ.version} recorded no fitting window)"
    else:
        mask = (sent > pd.Timestamp(through)).to_numpy()
        rows = f"the {int(mask.sum()):,} held-out sends after {through}, the last send v{champ.version} was fitted on"
    if not mask.any():
        return Rescore(
            None,
            None,
            f"none of the {len(held):,} held-out sends is after {through}, which v{champ.version} was fitted on",
        )
    champion = champion_gain(f"models:/{champ.name}/{champ.version}", result.holdout, mask)
    challenger = dr_gain(result.evaluation.shipped[mask], result.holdout, mask)
    return Rescore(champion, challenger, rows)


def champion_gain(model_uri: str, holdout: HeldOut, mask: np.ndarray | None = None) -> float:
    """DR gain per customer of a registered offer model's choices on this run's held-out campaigns (``mask``: some)."""
    import mlflow

    from training.model_format import input_example

    frame = holdout.frame if mask is None else holdout.frame[mask]
    model = mlflow.pyfunc.load_model(model_uri)
    spec = model.unwrap_python_model().model.spec
    features = spec["features"]
    chosen = model.predict(input_example(frame[features], n=len(frame)))["offer"].to_numpy()
    arms = list(spec["arms"])
    return dr_gain(np.array([arms.index(c) for c in chosen]), holdout, mask)


def dr_gain(policy: np.ndarray, holdout: HeldOut, mask: np.ndarray | None) -> float:
    """DR gain per send of ``policy`` (arm per held-out send in ``mask``) over sending nothing."""
    inputs = holdout.dr_inputs(mask)
    none = np.zeros(len(policy), dtype=int)
    return float((dr_scores(policy, *inputs) - dr_scores(none, *inputs)).mean())
