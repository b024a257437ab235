"""The offer model's files: metrics.json, the tables, the card, the Qini plot and its data, the model folder.

``write_outputs`` puts the champion's files in ``models/offers/`` and this run's in
``models/offers/challenger/``; ``write_files`` is the set a run logs as artifacts.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.io import write_text_atomic
from modeling.offer_model import OfferModel
from training.offers.model_card import model_card
from training.offers.offpolicy import plot_uplift

if TYPE_CHECKING:
    from training.offers.pipeline import OfferTrainingResult

# the run artifacts that make up models/offers/ (besides the model folder)
FILES = ("metrics.json", "policies.csv", "learners.csv", "model_card.md", "qini.png", "plots")


def write_files(result: OfferTrainingResult, folder: Path) -> Path:
    """metrics.json, the tables, the card, the Qini plot and its data (plots/qini.csv) into ``folder``."""
    judged = result.evaluation
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "learner": judged.learner,
        "learner_choice": judged.choice.reason,
        "decision": judged.fallback.reason,
        "holdout": result.holdout.description,
        "conversion_value": result.value.description,
        "promoted": result.promoted,
        "champion_gate": result.gate,
        "run_id": result.run_id,
        "metrics": result.metrics,
    }
    write_text_atomic(json.dumps(payload, indent=1, default=float), folder / "metrics.json")
    write_text_atomic(judged.policies.to_csv(), folder / "policies.csv")
    write_text_atomic(judged.learners.to_csv(), folder / "learners.csv")
    write_text_atomic(model_card(result), folder / "model_card.md")
    plot_uplift(judged.curves).savefig(folder / "qini.png", dpi=90)
    (folder / "plots").mkdir(exist_ok=True)
    write_text_atomic(qini_table(judged.curves).round(6).to_csv(index=False), folder / "plots" / "qini.csv")
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
    from training.registry import CHALLENGER_DIR, champion_files
    from training.staging import clean_staging, staged, staging

    out_dir = Path(out_dir)
    clean_staging(out_dir)
    with staging(out_dir) if model_name is None else staged(out_dir / CHALLENGER_DIR) as stage:
        write_files(result, stage)
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
