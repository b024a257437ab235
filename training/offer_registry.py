"""The offer model's MLflow side: the run's record, the model card, the pyfunc and its signature, the gate.

``record_run`` logs what ``fit_and_evaluate`` decided and measured under the
active run (parameters and tags saying how the sends were held out and where a
conversion's value came from, the campaign log as a dataset input, metrics,
tables, the Qini plot, the card), logs the pyfunc (as code, with the code it
needs, so plain MLflow loads it), registers it as ``challenger`` and runs the
champion gate on the DR gain over held-out sends that neither model was fitted
on. ``write_outputs`` puts the champion's files in ``models/offers/`` and this
run's in ``models/offers/challenger/``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.config import ROOT, OfferCatalog
from features.contract import CUSTOMER_ID, OFFERS
from features.io import write_text_atomic
from modeling.offer_model import OfferModel
from modeling.tracking import pip_requirements
from training.offpolicy import plot_uplift

if TYPE_CHECKING:
    from training.offer_rows import OfferRows
    from training.offers import OfferModelConfig, OfferTrainingResult

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
# the run artifacts that make up models/offers/ (besides the model folder)
FILES = ("metrics.json", "policies.csv", "learners.csv", "model_card.md", "qini.png", "plots")


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
            f"- Champion gate: {getattr(result, 'gate', None) or 'not run (not registered yet)'}",
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
    """Inputs: every feature by name, required (as for the churn model); numbers as doubles, text features of
    any type (a category column passes through as ``build-features`` writes it; the model types it itself)."""
    from mlflow.models import ModelSignature, infer_signature

    from training.registry import input_schema

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


def held_out_key(result: OfferTrainingResult) -> str:
    """Names the held-out sends for the gate: their days and a checksum of which sends with which outcomes.

    Two runs share a recorded score only when they held out these very sends (the same days of another log
    are other sends).
    """
    import zlib

    held = result.holdout["frame"]
    keys = (held[CUSTOMER_ID].astype(str) + "@" + held[OFFERS.sent_at].astype(str)).to_numpy()
    outcome = held[OFFERS.converted].astype(int).to_numpy()
    order = np.argsort(keys, kind="stable")
    text = "\n".join(f"{k}:{v}" for k, v in zip(keys[order], outcome[order], strict=True))
    days = result.holdout["days"]
    return f"{days} ({len(keys):,} sends, crc32 {zlib.crc32(text.encode()):08x})"


def fitted_through(result: OfferTrainingResult, rows: OfferRows, config: OfferModelConfig) -> str:
    """The last send the registered model was fitted on: every send when refit on all, else the training sends."""
    from training.offer_rows import ROW

    frame = rows.frame
    fitted = frame if config.refit_on_all else frame[~frame[ROW].isin(result.heldout[ROW])]
    return pd.to_datetime(fitted[OFFERS.sent_at]).max().isoformat()


def record_run(result: OfferTrainingResult, rows: OfferRows, config: OfferModelConfig, run, *, source=None) -> None:
    """Everything the run decided, the pyfunc, its registration and the gate; sets ``run_id`` and ``promoted``."""
    import mlflow

    from training.config import Gate
    from training.registry import (
        TEST_CUTOFF_TAG,
        code_folder,
        deciding,
        describe,
        gate,
        input_example,
        log_dataset,
        register,
    )

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
    days = held_out_key(result)
    mlflow.set_tags(
        {
            TEST_CUTOFF_TAG: days,
            "holdout": result.holdout["kind"],
            "holdout_description": result.holdout["description"],
            "conversion_value_source": result.value.source,
            "learner_choice": result.choice.reason,
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
        mlflow.log_artifacts(str(_write_files(result, tmp / "files")))  # before the gate: a champion has them
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
        files = _write_files(result, Path(tmp))
        mlflow.log_artifact(str(files / "metrics.json"))
        mlflow.log_artifact(str(files / "model_card.md"))
    describe(config.model_name, version, model_card(result))


def rescore(champ, result: OfferTrainingResult):
    """Champion and challenger on this run's held-out sends after the last send the champion was fitted on."""
    from training.registry import FITTED_TAG, Rescore

    held = result.holdout["frame"]
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
    challenger = _gain(result.heldout["shipped"].to_numpy()[mask], result.holdout, mask)
    return Rescore(champion, challenger, rows)


def champion_gain(model_uri: str, holdout: dict, mask: np.ndarray | None = None) -> float:
    """DR gain per customer of a registered offer model's choices on this run's held-out campaigns (``mask``: some)."""
    import mlflow

    from training.registry import input_example

    frame = holdout["frame"] if mask is None else holdout["frame"][mask]
    model = mlflow.pyfunc.load_model(model_uri)
    spec = model.unwrap_python_model().model.spec
    features = spec["features"]
    chosen = model.predict(input_example(frame[features], n=len(frame)))["offer"].to_numpy()
    arms = list(spec["arms"])
    return _gain(np.array([arms.index(c) for c in chosen]), holdout, mask)


def _gain(policy: np.ndarray, holdout: dict, mask: np.ndarray | None) -> float:
    """DR gain per send of ``policy`` (arm per held-out send in ``mask``) over sending nothing."""
    from training.offpolicy import dr_scores

    keep = slice(None) if mask is None else mask
    args = [np.asarray(holdout[k])[keep] for k in ("reward", "logged", "propensity", "q")]
    none = np.zeros(len(policy), dtype=int)
    return float((dr_scores(policy, *args) - dr_scores(none, *args)).mean())


def _write_files(result: OfferTrainingResult, folder: Path) -> Path:
    """metrics.json, the tables, the card, the Qini plot and its data (plots/qini.csv) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "learner": result.learner,
        "learner_choice": result.choice.reason,
        "decision": result.fallback.reason,
        "holdout": result.holdout["description"],
        "conversion_value": result.value.description,
        "promoted": result.promoted,
        "champion_gate": getattr(result, "gate", None),
        "run_id": result.run_id,
        "metrics": result.metrics,
    }
    write_text_atomic(json.dumps(payload, indent=1, default=float), folder / "metrics.json")
    write_text_atomic(result.policies.to_csv(), folder / "policies.csv")
    write_text_atomic(result.learners.to_csv(), folder / "learners.csv")
    write_text_atomic(model_card(result), folder / "model_card.md")
    plot_uplift(result.curves).savefig(folder / "qini.png", dpi=90)
    (folder / "plots").mkdir(exist_ok=True)
    write_text_atomic(qini_table(result.curves).round(6).to_csv(index=False), folder / "plots" / "qini.csv")
    return folder


def qini_table(curves: dict[str, pd.DataFrame], points: int = 101) -> pd.DataFrame:
    """Each offer's Qini curve (incremental conversions vs none) at 0%, 1%, ..., 100% of customers targeted."""
    share = np.linspace(0, 1, points)
    out = {"share_targeted": share}
    for name, curve in curves.items():
        out[name] = np.interp(share, np.r_[0.0, curve["fraction"]], np.r_[0.0, curve["qini"]])
    return pd.DataFrame(out)


def write_outputs(result: OfferTrainingResult, out_dir: Path, *, model_name: str | None) -> None:
    """This run's files (model folder included) into ``out_dir/challenger/``; the champion's into ``out_dir``.

    Without tracking (``model_name`` None) there is no champion: the run's files go to ``out_dir`` itself.
    Each set is written into a staging folder and renamed into place, so a killed run leaves the old files.
    """
    from training.registry import CHALLENGER_DIR, champion_files, clean_staging, staged, staging

    out_dir = Path(out_dir)
    clean_staging(out_dir)
    with staging(out_dir) if model_name is None else staged(out_dir / CHALLENGER_DIR) as stage:
        _write_files(result, stage)
        OfferModel.from_parts(result.boosters, result.spec).save(stage / "model")
    if model_name is not None:
        champion_files(model_name, out_dir, FILES, _offer_model_folder)


def _offer_model_folder(champ, dst: Path) -> None:
    """The champion's booster folder (what ``modeling.offer_model.OfferModel.load`` reads)."""
    import shutil

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(f"models:/{champ.name}/{champ.version}", dst_path=tmp)
        shutil.copytree(Path(local) / "artifacts" / "offer_model", dst)
