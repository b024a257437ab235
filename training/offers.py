"""Next-best-offer training: settings, the fit-and-judge step and the whole job.

Reads the ``offers`` log and the other contract tables (rows:
``training/offer_rows.py``); holds sends out (``offer_split.py``: the latest
campaign days, or a random share per arm when the log has too few days), says
where a conversion's value comes from (``offer_value.py``), fits every uplift
learner (``uplift.py``), keeps the reference learner unless another beats it
with confidence on the held-out sends (``policy.py``), falls back to the best
constant policy when personalising is not confirmed, and writes an MLflow run
with the registered pyfunc (``offer_registry.py``) and ``models/offers/``.
Policies are judged by off-policy (DR) value, never by redemption rate.

On the demo data (20,000 customers, seed 7, one tuning trial) the latest 4 of
13 campaign days are held out; the shipped T-learner policy earns 90% of the
oracle's true incremental profit per send (1.37 vs 1.52) and beats every
single-offer policy (tests/test_offers_demo.py). The X-learner's would have
earned 1.45, but its DR gain over the T-learner (+0.07 ± 0.05) was not
significant, so the simpler learner shipped. Small or noisy real logs usually
can't confirm a personalised policy; the constant-policy fallback then keeps
the shipped policy from losing money.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from features.config import FeaturesConfig, Frozen, OfferCatalog
from features.contract import CUSTOMER_ID, OFFERS
from features.sources import Tables
from modeling.economics import best_arms, expected_rewards, true_rewards
from modeling.offer_model import order_values
from training.offer_registry import campaign_window, log_settings, record_run, write_outputs
from training.offer_rows import ARM, ROW, OfferRows, logged_propensity, offer_training_rows, realized_order_value
from training.offer_split import Holdout, check_arms, choose_holdout, describe_days, split_random
from training.offer_value import ConversionValue, conversion_value
from training.offpolicy import evaluate_policies, qini_summary, realized_reward, uplift_curve
from training.policy import Fallback, LearnerChoice, check_against_constant, choose_learner, decide
from training.uplift import DEFAULT_PARAMS, LEARNERS, make_learner

log = logging.getLogger(__name__)


class OfferModelConfig(Frozen):
    """How the offer model is trained, judged and registered (configs/offer_model.yaml)."""

    learners: tuple[str, ...] = Field(
        LEARNERS, min_length=1, description="uplift learners to try: t, s, x, dr; the first is the reference"
    )
    holdout: str = Field("auto", pattern="^(auto|time|random)$", description="auto: time with enough days, else random")
    holdout_share: float = Field(0.3, gt=0, lt=1, description="share of sends held out (latest days, or at random)")
    time_holdout_min_days: int = Field(2, ge=2, description="auto: hold out by time from this many campaign days")
    min_conversions_per_arm: int = Field(5, ge=1, description="refuse when an arm has fewer in training")
    revenue_statistic: str = Field("mean", pattern="^(mean|median)$", description="log revenue as the default value")
    trials: int = Field(6, ge=0, description="Optuna trials tuning LightGBM; 0 = defaults")
    timeout_s: float | None = Field(300, gt=0, description="stop tuning after this many seconds")
    lgbm: dict[str, float | int] = Field(default_factory=dict, description="LightGBM overrides of the defaults")
    min_arm_share: float = Field(0.02, gt=0, lt=1, description="warn when an arm gets less in some segment")
    propensity_clip: float = Field(0.01, gt=0, lt=1, description="smallest propensity used as a weight")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="personalise only when it beats a constant policy so")
    max_offers: int | None = Field(None, ge=0, description="budget: at most this many offers")
    max_cost: float | None = Field(None, ge=0, description="budget: at most this expected total cost")
    order_value_feature: str | None = Field("sales_avg_order_value_all", description="the customer's own order value")
    order_count_feature: str | None = Field("sales_orders_all", description="orders so far, for min_orders")
    refit_on_all: bool = Field(True, description="refit the chosen learner on every row before registering")
    model_name: str = "retain-offers"
    experiment: str = "retain-offers"
    gate_margin: float = Field(0.0, ge=0, description="challenger's DR gain must beat the champion's by this")
    seed: int = 7
    n_jobs: int = Field(2, ge=1, description="LightGBM threads")

    @field_validator("learners")
    @classmethod
    def _known_learners(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [k for k in value if k not in LEARNERS]
        if unknown or len(set(value)) != len(value):
            raise ValueError(f"learners must be distinct names from {LEARNERS}, got {list(value)}")
        return value


def holdout_for(rows: OfferRows, config: OfferModelConfig) -> Holdout:
    """The held-out sends the settings ask for (see training/offer_split.py)."""
    return choose_holdout(
        rows.frame[OFFERS.sent_at],
        rows.frame[ARM].to_numpy(),
        kind=config.holdout,
        holdout_share=config.holdout_share,
        min_time_days=config.time_holdout_min_days,
        seed=config.seed,
    )


OFFER_SPACE = ("n_estimators", "learning_rate", "num_leaves", "min_child_samples", "reg_lambda")


def tune_params(X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, valid: np.ndarray, config: OfferModelConfig) -> dict:
    """Optuna (TPE) over LightGBM settings by the pooled outcome model's validation log-loss; trials as nested runs."""
    import mlflow
    import optuna
    from sklearn.metrics import log_loss

    from training.progress import progress

    base = {**DEFAULT_PARAMS, **config.lgbm}
    if config.trials == 0:
        return base

    def objective(trial: optuna.Trial) -> float:
        params = {
            **base,
            "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 20, 400, log=True),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }
        learner = make_learner("s", int(arm.max()) + 1, params, config.seed, config.n_jobs)
        learner.fit(X[~valid], arm[~valid], y[~valid])
        p = learner.predict_proba(X[valid])[np.arange(valid.sum()), arm[valid]]
        loss = log_loss(y[valid], np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])
        if mlflow.active_run() is not None:  # tracked: each trial a nested run under the parent
            with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
                mlflow.log_params(params)
                mlflow.log_metric("valid_log_loss", loss)
        return loss

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=config.seed))
    # trial 0 is the configured settings, so tuning never returns worse than them on the validation sends
    study.enqueue_trial({k: base[k] for k in OFFER_SPACE}, skip_if_exists=True)
    study.optimize(
        objective,
        n_trials=config.trials,
        timeout=config.timeout_s,
        callbacks=[progress(config.trials, "valid log-loss")],
    )
    return {**base, **study.best_params}


@dataclass
class OfferTrainingResult:
    """What a run decided and measured; ``policies`` and ``learners`` are the held-out tables."""

    learner: str
    params: dict
    learners: pd.DataFrame
    policies: pd.DataFrame
    fallback: Fallback
    qini: dict[str, dict[str, float]]
    heldout: pd.DataFrame  # per held-out send: log_row, the learned policy's arm, the shipped policy's arm
    spec: dict
    boosters: list
    metrics: dict[str, float]
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    holdout: dict = field(default_factory=dict)  # held-out features, rewards and q, to rescore a champion
    choice: LearnerChoice | None = None
    value: ConversionValue | None = None
    run_id: str | None = None
    promoted: bool | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _policy(learner, rows, mask, catalog, config, spec):
    """Conversion probabilities, expected rewards and the chosen arm per row of ``mask``."""
    proba = learner.predict_proba(rows.X(mask))
    value = order_values(rows.frame.loc[mask], spec)
    counts = rows.frame.loc[mask, config.order_count_feature] if config.order_count_feature in rows.features else None
    arms = decide(
        proba,
        value,
        catalog,
        order_count=None if counts is None else counts.to_numpy(),
        max_offers=config.max_offers,
        max_cost=config.max_cost,
    )
    return proba, expected_rewards(proba, value, catalog), arms


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


def fit_and_evaluate(
    rows: OfferRows,
    *,
    catalog: OfferCatalog,
    config: OfferModelConfig,
    truth: pd.DataFrame | None = None,
    progress=None,
) -> OfferTrainingResult:
    """Hold out, tune, fit every learner, choose one by paired DR value on the held-out sends, decide.

    ``progress``: a rich ``Progress`` showing the steps (tuning, each learner's fit, evaluation, refit), or None.
    """
    steps = 2 + len(config.learners) + int(config.refit_on_all)
    task = progress.add_task("tuning", total=steps) if progress is not None else None

    def step(done: str, next_step: str) -> None:
        log.debug("train-offers: %s done", done)
        if progress is not None:
            progress.update(task, advance=1, description=next_step)

    timings = {}
    t0 = time.perf_counter()
    frame = rows.frame
    arm, y = frame[ARM].to_numpy(), frame[OFFERS.converted].to_numpy().astype(int)
    holdout, value_source = prepare(rows, catalog=catalog, config=config)
    held = holdout.mask
    log.info("holdout: %s", holdout.description)
    log.info("conversion value: %s", value_source.description)
    propensity, prop_source = logged_propensity(rows, config)
    spec = {
        "arms": rows.arms,
        "features": rows.features,
        "categories": rows.categories,
        "catalog": catalog.model_dump(),
        "order_value_feature": config.order_value_feature if config.order_value_feature in rows.features else None,
        "order_count_feature": config.order_count_feature if config.order_count_feature in rows.features else None,
        "default_order_value": value_source.default_order_value,
        "constant_offer": None,
    }
    X = rows.X()
    train_idx = np.flatnonzero(~held)
    if holdout.kind == "time":  # tuning's own time split inside the training slice
        valid = np.zeros(len(train_idx), dtype=bool)
        valid[int(0.75 * len(train_idx)) :] = True
    else:
        valid = split_random(arm[train_idx], 0.25, config.seed + 1)
    params = tune_params(X.iloc[train_idx], arm[train_idx], y[train_idx], valid, config)
    timings["tune_s"] = time.perf_counter() - t0
    step("tuning", f"fitting the {config.learners[0]}-learner")

    est_value = order_values(frame, spec)
    reward = realized_reward(y, arm, realized_order_value(rows, est_value), catalog)
    t_true = None
    if truth is not None:
        t_true = true_rewards(truth.iloc[frame.loc[held, ROW].to_numpy()], rows.arms, catalog)
    h_reward, h_arm, h_prop = reward[held], arm[held], propensity[held]

    fitted, fit_s = {}, {}
    for kind in config.learners:
        t1 = time.perf_counter()
        learner = make_learner(kind, len(rows.arms), params, config.seed, config.n_jobs)
        learner.fit(X.iloc[train_idx], arm[train_idx], y[train_idx], propensity[train_idx])
        fitted[kind] = (learner, *_policy(learner, rows, held, catalog, config, spec))
        fit_s[kind] = time.perf_counter() - t1
        later = config.learners[list(config.learners).index(kind) + 1 :]
        step(f"{kind}-learner", f"fitting the {later[0]}-learner" if later else "evaluating policies on held-out sends")
    # one outcome model (the reference learner's) corrects every policy's DR score, so differences are paired
    q = fitted[config.learners[0]][2]
    choice = choose_learner(
        {kind: f[3] for kind, f in fitted.items()}, h_reward, h_arm, h_prop, q, confidence=config.confidence
    )
    table = evaluate_policies({k: f[3] for k, f in fitted.items()}, h_reward, h_arm, h_prop, q, true_rewards=t_true)
    learners = table.join(choice.table).assign(fit_s=pd.Series(fit_s))
    learners.index.name = "learner"
    best = choice.learner
    learner, proba, _, arms = fitted[best]
    timings["learners_s"] = time.perf_counter() - t0 - timings["tune_s"]
    log.info("uplift learners on held-out sends (DR gain per send):\n%s", learners.to_string())

    fallback = check_against_constant(arms, h_reward, h_arm, h_prop, q, rows.arms, confidence=config.confidence)
    shipped = arms if fallback.constant_arm is None else np.full(len(arms), fallback.constant_arm)
    n_arms = len(rows.arms)
    policies = {"learned": arms, "shipped": shipped}
    policies.update({f"all_{a}": np.full(len(arms), i) for i, a in enumerate(rows.arms)})
    policies["random"] = np.full((len(arms), n_arms), 1.0 / n_arms)
    if t_true is not None:
        policies["oracle"] = best_arms(t_true)
    table = evaluate_policies(policies, h_reward, h_arm, h_prop, q, true_rewards=t_true)
    qini, curves = {}, {}
    for k, name in enumerate(rows.arms[1:], start=1):
        sel = np.isin(h_arm, [0, k])
        curves[name] = uplift_curve(proba[sel, k] - proba[sel, 0], h_arm[sel] == k, y[held][sel])
        qini[name] = qini_summary(curves[name])

    heldout = pd.DataFrame({ROW: frame.loc[held, ROW].to_numpy(), "learned": arms, "shipped": shipped})
    if fallback.constant_arm is not None:
        spec["constant_offer"] = rows.arms[fallback.constant_arm]
    final = learner
    step("evaluation", f"refitting the {best}-learner on every send" if config.refit_on_all else "done")
    if config.refit_on_all:
        t1 = time.perf_counter()
        final = make_learner(best, n_arms, params, config.seed, config.n_jobs).fit(X, arm, y, propensity)
        timings["refit_s"] = time.perf_counter() - t1
        step("refit", "done")
    spec["terms"] = {rows.arms[a]: terms for a, terms in enumerate(final.terms_)}
    metrics = _metrics(table, learners, qini, fallback, len(frame), int(held.sum()))
    metrics["propensity_from_log"] = float(prop_source == "log")
    metrics["default_order_value"] = value_source.default_order_value
    metrics["own_order_value_share"] = value_source.own_share
    timings["total_s"] = time.perf_counter() - t0
    held_frame = frame.loc[held]
    holdout_info = {
        "frame": held_frame.reset_index(drop=True),
        "reward": h_reward,
        "logged": h_arm,
        "propensity": h_prop,
        "q": q,
        "kind": holdout.kind,
        "description": holdout.description,
        "days": _test_tag(held_frame, holdout.kind),
    }
    return OfferTrainingResult(
        best,
        params,
        learners,
        table,
        fallback,
        qini,
        heldout,
        spec,
        final.boosters_,
        metrics,
        curves,
        holdout_info,
        choice=choice,
        value=value_source,
        timings=timings,
    )


def _test_tag(held: pd.DataFrame, kind: str) -> str:
    """Names the held-out sends for the champion gate: their days, and for a random draw which sends."""
    days = describe_days(held[OFFERS.sent_at])
    if kind == "time":
        return days
    keys = held[CUSTOMER_ID].astype(str) + "@" + held[OFFERS.sent_at].astype(str)
    digest = zlib.crc32("\n".join(sorted(keys)).encode())
    return f"{days} random {len(held)} sends crc32 {digest:08x}"


def _metrics(table, learners, qini, fallback, n_rows, n_held) -> dict[str, float]:
    m = {"rows": float(n_rows), "heldout_rows": float(n_held), "personalised": float(fallback.constant_arm is None)}
    for policy, row in table.iterrows():
        for col in ("dr_gain", "dr_gain_se", "ipw_gain", "ipw_gain_se", "true_gain"):
            if col in row and pd.notna(row[col]):
                m[f"{policy}_{col}"] = float(row[col])
    for kind, row in learners.iterrows():
        m[f"learner_{kind}_dr_gain"] = float(row["dr_gain"])
        m[f"learner_{kind}_vs_reference"] = float(row["vs_reference"])
    for name, s in qini.items():
        m[f"qini_{name}"], m[f"auuc_{name}"] = s["qini"], s["auuc"]
    m["gain_over_constant"], m["gain_over_constant_se"] = fallback.gain, fallback.gain_se
    return m


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
    from training.registry import run_name, start_tracking, tracked_run

    start_tracking(config.experiment)
    with tracked_run(run_name("offers", campaign_window(rows))) as run:
        log_settings(rows, catalog, config)
        result = fit_and_evaluate(rows, catalog=catalog, config=config, truth=truth, progress=progress)
        record_run(result, rows, config, run)
    return result
