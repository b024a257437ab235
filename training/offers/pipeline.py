"""The offer model's job, step by step: rows, checks, tuning, candidates, evaluation, refit, run, files."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.config import FeaturesConfig, OfferCatalog
from features.contract import OFFERS
from features.sources import Tables
from training.offers.candidates import fit_candidates
from training.offers.config import OfferModelConfig
from training.offers.conversion_value import ConversionValue, conversion_value
from training.offers.dataset import ARM, OfferRows, offer_training_rows
from training.offers.evaluation import Evaluation, HeldOut, evaluate, held_out, run_metrics
from training.offers.holdout import Holdout, check_arms, holdout_for
from training.offers.outputs import write_outputs
from training.offers.propensity import logged_propensity
from training.offers.registry import campaign_window, log_settings, record_run
from training.offers.tuning import tune_params, validation_sends
from training.offers.uplift import make_learner

log = logging.getLogger(__name__)


@dataclass
class OfferTrainingResult:
    """What a run decided and measured; ``run_id``, ``promoted`` and ``gate`` once it is registered."""

    evaluation: Evaluation
    holdout: HeldOut
    params: dict
    spec: dict  # with ``boosters``, what ``modeling.offer_model.OfferModel.from_parts`` scores
    boosters: list
    value: ConversionValue
    metrics: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    promoted: bool | None = None
    gate: str | None = None


def prepare(rows: OfferRows, *, catalog: OfferCatalog, config: OfferModelConfig) -> tuple[Holdout, ConversionValue]:
    """Every check that can refuse the log, before any model is fitted: holdout, arms, conversion value."""
    frame = rows.frame
    holdout = holdout_for(rows, config)
    check_arms(
        frame[ARM].to_numpy(),
        frame[OFFERS.converted].to_numpy().astype(int),
        holdout.mask,
        rows.arms,
        min_conversions=config.min_conversions_per_arm,
    )
    value = conversion_value(
        frame,
        order_value_feature=config.order_value_feature if config.order_value_feature in rows.features else None,
        catalog=catalog,
        statistic=config.revenue_statistic,
    )
    return holdout, value


def model_spec(rows: OfferRows, catalog: OfferCatalog, config: OfferModelConfig, value: ConversionValue) -> dict:
    """What the offer model needs besides its boosters (the learner's terms and a constant offer come later)."""
    return {
        "arms": rows.arms,
        "features": rows.features,
        "categories": rows.categories,
        "catalog": catalog.model_dump(),
        "order_value_feature": config.order_value_feature if config.order_value_feature in rows.features else None,
        "order_count_feature": config.order_count_feature if config.order_count_feature in rows.features else None,
        "default_order_value": value.default_order_value,
        "constant_offer": None,
    }


class _Steps:
    """The job's steps on a rich ``Progress`` (or only in the debug log without one)."""

    def __init__(self, progress, total: int):
        self.progress = progress
        self.task = progress.add_task("tuning", total=total) if progress is not None else None

    def __call__(self, done: str, next_step: str) -> None:
        log.debug("train-offers: %s done", done)
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=next_step)


def fit_and_evaluate(
    rows: OfferRows,
    *,
    catalog: OfferCatalog,
    config: OfferModelConfig,
    truth: pd.DataFrame | None = None,
    progress=None,
) -> OfferTrainingResult:
    """Hold out, tune, fit every learner, choose one by paired DR value on the held-out sends, decide, refit.

    ``progress``: a rich ``Progress`` showing the steps (tuning, each learner's fit, evaluation, refit), or None.
    """
    step = _Steps(progress, 2 + len(config.learners) + int(config.refit_on_all))
    timings = {}
    t0 = time.perf_counter()
    frame = rows.frame
    arm, y = frame[ARM].to_numpy(), frame[OFFERS.converted].to_numpy().astype(int)
    holdout, value = prepare(rows, catalog=catalog, config=config)
    log.info("holdout: %s", holdout.description)
    log.info("conversion value: %s", value.description)
    propensity, prop_source = logged_propensity(rows, config)
    spec = model_spec(rows, catalog, config, value)

    train = np.flatnonzero(~holdout.mask)
    valid = validation_sends(arm[train], holdout.kind, config.seed)
    params = tune_params(rows.X().iloc[train], arm[train], y[train], valid, config)
    timings["tune_s"] = time.perf_counter() - t0
    step("tuning", f"fitting the {config.learners[0]}-learner")

    candidates = fit_candidates(
        rows, holdout.mask, params=params, propensity=propensity, catalog=catalog, config=config, spec=spec, step=step
    )
    timings["learners_s"] = time.perf_counter() - t0 - timings["tune_s"]
    reference = candidates[config.learners[0]]
    held = held_out(rows, holdout, spec=spec, catalog=catalog, propensity=propensity, q=reference.q, truth=truth)
    judged = evaluate(candidates, held, rows.arms, confidence=config.confidence)
    log.info("uplift learners on held-out sends (DR gain per send):\n%s", judged.learners.to_string())
    if judged.fallback.constant_arm is not None:
        spec["constant_offer"] = rows.arms[judged.fallback.constant_arm]

    best = judged.learner
    step("evaluation", f"refitting the {best}-learner on every send" if config.refit_on_all else "done")
    final = candidates[best].learner
    if config.refit_on_all:
        t1 = time.perf_counter()
        final = make_learner(best, len(rows.arms), params, config.seed, config.n_jobs).fit(rows.X(), arm, y, propensity)
        timings["refit_s"] = time.perf_counter() - t1
        step("refit", "done")
    spec["terms"] = {rows.arms[a]: terms for a, terms in enumerate(final.terms_)}
    metrics = run_metrics(judged, rows=len(frame), heldout_rows=holdout.rows)
    metrics["propensity_from_log"] = float(prop_source == "log")
    metrics["default_order_value"] = value.default_order_value
    metrics["own_order_value_share"] = value.own_share
    timings["total_s"] = time.perf_counter() - t0
    return OfferTrainingResult(judged, held, params, spec, final.boosters_, value, metrics, timings)


def train_offers(
    tables: Tables,
    *,
    catalog: OfferCatalog,
    config: OfferModelConfig,
    features_config: FeaturesConfig | None = None,
    truth: pd.DataFrame | None = None,
    out_dir: str | Path | None = "models/offers",
    track: bool = True,
    progress: bool = False,
) -> OfferTrainingResult:
    """The whole job: rows, learners, policy, MLflow run + registry, files under ``out_dir``.

    ``progress``: show rich progress bars (feature rows per send day, tuning, each learner, evaluation, refit).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    t0 = time.perf_counter()
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, transient=True, disable=not progress) as bar:
        rows = offer_training_rows(tables, catalog=catalog, features_config=features_config, progress=bar)
        rows_s = time.perf_counter() - t0
        if not track:
            result = fit_and_evaluate(rows, catalog=catalog, config=config, truth=truth, progress=bar)
        else:
            result = _tracked(rows, catalog, config, truth, progress=bar)
    result.timings["rows_s"] = rows_s
    if out_dir is not None:  # the champion's files in out_dir, this run's in out_dir/challenger/
        write_outputs(result, Path(out_dir), model_name=config.model_name if track else None)
    return result


def _tracked(
    rows: OfferRows, catalog: OfferCatalog, config: OfferModelConfig, truth, progress=None
) -> OfferTrainingResult:
    """The run: settings, tuning trials as nested runs, the fit, then everything ``record_run`` logs."""
    from training.runs import run_name, start_tracking, tracked_run

    start_tracking(config.experiment)
    with tracked_run(run_name("offers", campaign_window(rows))) as run:
        log_settings(rows, catalog, config)
        result = fit_and_evaluate(rows, catalog=catalog, config=config, truth=truth, progress=progress)
        record_run(result, rows, config, run)
    return result
