"""Next-best-offer training: offer-log rows, uplift learners, the policy, evaluation, registry.

Reads the ``offers`` log and the other contract tables; writes an MLflow run
(parameters, per-learner and per-policy values, Qini plot, the pyfunc model
registered with alias ``challenger``) and ``models/offers/`` (the model folder
and ``metrics.json``). The last campaigns are held out: learners are compared
and the policy judged there by off-policy (DR) value, never by redemption rate.

On the demo data (20,000 customers, seed 7) the shipped policy earns about 94%
of the oracle's true incremental profit per send (1.43 vs 1.52) and beats every
single-offer policy (tests/test_offers_demo.py). Small or noisy real logs
usually can't confirm a personalised policy; the constant-policy fallback then
keeps the shipped policy from losing money.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import Field, field_validator
from sklearn.model_selection import cross_val_predict

from features.build import build_features, feature_columns
from features.config import FeaturesConfig, Frozen, OfferCatalog
from features.contract import CUSTOMER_ID, NO_OFFER, OFFERS
from features.io import write_text_atomic
from features.sources import Tables
from serving.offer_predictor import expected_rewards, order_values, save_model
from training.offer_split import Holdout, OfferLogError, check_arms, choose_holdout, describe_days, split_random
from training.offer_value import ConversionValue, conversion_value
from training.offpolicy import evaluate_policies, plot_uplift, qini_summary, realized_reward, true_rewards, uplift_curve
from training.policy import Fallback, LearnerChoice, check_against_constant, choose_learner, decide
from training.uplift import DEFAULT_PARAMS, LEARNERS, make_learner

log = logging.getLogger(__name__)

ARM = "arm"
ROW = "log_row"  # position of the row in the offers table, to align known truth


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


@dataclass
class OfferRows:
    """Offer-log rows with the customer's features as of each send; ``features`` names the model inputs."""

    frame: pd.DataFrame
    features: list[str]
    arms: list[str]
    categories: dict[str, list] = field(default_factory=dict)

    def X(self, mask=None) -> pd.DataFrame:
        frame = self.frame if mask is None else self.frame.loc[mask]
        return frame[self.features]


def offer_training_rows(
    tables: Tables, *, catalog: OfferCatalog, features_config: FeaturesConfig | None = None
) -> OfferRows:
    """One row per logged send: features as of the send's day (built once per distinct day), arm and outcome.

    The cutoff is the start of the send's day, so nothing from that day leaks in.
    """
    if tables.offers is None:
        raise OfferLogError("offer training needs an offers table (offers.csv or offers.parquet in the data folder)")
    offers = tables.offers.reset_index(drop=True).assign(**{ROW: np.arange(len(tables.offers))})
    arms = [NO_OFFER, *catalog.names]
    unknown = sorted(set(offers[OFFERS.offer]) - set(arms))
    if unknown:
        raise OfferLogError(
            f"offers table: offers {unknown} are not in the catalog {list(catalog.names)}; add them to configs/offers.yaml"
        )
    day = offers[OFFERS.sent_at].dt.normalize()
    parts = []
    for cutoff, group in offers.groupby(day, sort=True):
        feats = build_features(tables, cutoff=cutoff, config=features_config)
        parts.append(group.join(feats, on=CUSTOMER_ID))
    frame = pd.concat(parts, ignore_index=True)
    feats_cols = [c for c in feature_columns(feats) if c in frame.columns]
    categories = {}
    for col in feats_cols:  # levels differ between snapshots: use their union, sorted, everywhere
        if not (pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col])):
            levels = sorted(set(frame[col].dropna().astype(str)))
            categories[col] = levels
            frame[col] = pd.Categorical(frame[col].astype("string"), categories=levels)
    frame[ARM] = frame[OFFERS.offer].map({a: i for i, a in enumerate(arms)}).astype(int)
    frame = frame.sort_values([OFFERS.sent_at, ROW], kind="stable").reset_index(drop=True)
    return OfferRows(frame, feats_cols, arms, categories)


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


def logged_propensity(rows: OfferRows, config: OfferModelConfig) -> tuple[np.ndarray, str]:
    """P(logged arm | x): from the log when present, else estimated (cross-fitted multinomial LightGBM)."""
    frame = rows.frame
    arm = frame[ARM].to_numpy()
    _check_randomised(rows, config)
    if OFFERS.propensity in frame.columns and frame[OFFERS.propensity].notna().all():
        p, source = frame[OFFERS.propensity].to_numpy(dtype=float), "log"
    else:
        clf = lgb.LGBMClassifier(
            n_estimators=60, learning_rate=0.05, num_leaves=7, min_child_samples=500, verbose=-1, n_jobs=config.n_jobs
        )
        proba = cross_val_predict(clf, rows.X(), arm, cv=2, method="predict_proba")
        p, source = proba[np.arange(len(arm)), arm], "estimated"
        log.info("offers table has no propensities; estimated them from the features")
    return np.clip(p, config.propensity_clip, 1.0), source


def _check_randomised(rows: OfferRows, config: OfferModelConfig) -> list[str]:
    """Warn when an arm is almost never assigned in some segment (campaign day x order-value tier)."""
    frame = rows.frame
    value = frame.get(config.order_value_feature) if config.order_value_feature else None
    tier = pd.qcut(value.rank(method="first"), 4, labels=False) if value is not None and value.notna().any() else 0
    seg = pd.DataFrame(
        {"day": frame[OFFERS.sent_at].dt.strftime("%Y-%m-%d"), "tier": pd.Series(tier, index=frame.index).fillna(-1)}
    )
    share = pd.crosstab([seg["day"], seg["tier"]], frame[ARM], normalize="index")
    size = seg.groupby(["day", "tier"]).size()
    share = share.reindex(columns=range(len(rows.arms)), fill_value=0.0)[size.reindex(share.index) >= 50]
    problems = []
    for (day, t), row in share.iterrows():
        for a, s in row.items():
            if s < config.min_arm_share:
                problems.append(f"{rows.arms[a]!r} got {s:.1%} of sends on {day} in order-value tier {t}")
    if problems:
        log.warning(
            "the offer log does not look randomised: %d segment(s) where an arm is almost never assigned "
            "(below %.0f%%), e.g. %s; effects there rest on extrapolation",
            len(problems),
            100 * config.min_arm_share,
            "; ".join(problems[:3]),
        )
    return problems


def realized_order_value(rows: OfferRows, estimate: np.ndarray) -> np.ndarray:
    """Order value per row for the realised profit: the logged revenue when it converted, else the estimate."""
    frame = rows.frame
    if OFFERS.revenue not in frame.columns:
        return estimate
    revenue = frame[OFFERS.revenue].to_numpy(dtype=float)
    ok = (frame[OFFERS.converted].to_numpy() == 1) & np.isfinite(revenue) & (revenue > 0)
    return np.where(ok, revenue, estimate)


def tune_params(X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, valid: np.ndarray, config: OfferModelConfig) -> dict:
    """Optuna (TPE) over LightGBM settings by the pooled outcome model's validation log-loss; trials as nested runs."""
    import mlflow
    import optuna
    from sklearn.metrics import log_loss

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
    study.optimize(objective, n_trials=config.trials, timeout=config.timeout_s)
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
) -> OfferTrainingResult:
    """Hold out, tune, fit every learner, choose one by paired DR value on the held-out sends, decide."""
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
    log.info("learner: %s", choice.reason)

    fallback = check_against_constant(arms, h_reward, h_arm, h_prop, q, rows.arms, confidence=config.confidence)
    shipped = arms if fallback.constant_arm is None else np.full(len(arms), fallback.constant_arm)
    n_arms = len(rows.arms)
    policies = {"learned": arms, "shipped": shipped}
    policies.update({f"all_{a}": np.full(len(arms), i) for i, a in enumerate(rows.arms)})
    policies["random"] = np.full((len(arms), n_arms), 1.0 / n_arms)
    if t_true is not None:
        policies["oracle"] = (t_true[:, 1:] - t_true[:, [0]]).argmax(axis=1) + 1
        policies["oracle"] = np.where((t_true[:, 1:] - t_true[:, [0]]).max(axis=1) > 0, policies["oracle"], 0)
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
    if config.refit_on_all:
        t1 = time.perf_counter()
        final = make_learner(best, n_arms, params, config.seed, config.n_jobs).fit(X, arm, y, propensity)
        timings["refit_s"] = time.perf_counter() - t1
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
) -> OfferTrainingResult:
    """The whole job: rows, learners, policy, MLflow run + registry, files under ``out_dir``."""
    t0 = time.perf_counter()
    rows = offer_training_rows(tables, catalog=catalog, features_config=features_config)
    rows_s = time.perf_counter() - t0
    if not track:
        result = fit_and_evaluate(rows, catalog=catalog, config=config, truth=truth)
    else:
        result = _tracked(rows, catalog, config, truth)
    result.timings["rows_s"] = rows_s
    if out_dir is not None:
        out = Path(out_dir)
        save_model(result.boosters, result.spec, out / "model")
        payload = {
            "learner": result.learner,
            "learner_choice": result.choice.reason,
            "decision": result.fallback.reason,
            "holdout": result.holdout["description"],
            "conversion_value": result.value.description,
            "promoted": result.promoted,
            "run_id": result.run_id,
            "metrics": result.metrics,
        }
        write_text_atomic(json.dumps(payload, indent=1, default=float), out / "metrics.json")
        write_text_atomic(result.policies.to_csv(), out / "policies.csv")
        write_text_atomic(result.learners.to_csv(), out / "learners.csv")
        write_text_atomic(model_card(result), out / "model_card.md")
        plot_uplift(result.curves).savefig(out / "qini.png", dpi=90)
    return result


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


def _tracked(rows: OfferRows, catalog: OfferCatalog, config: OfferModelConfig, truth) -> OfferTrainingResult:
    """The run: parameters, trials as nested runs, tables, Qini plot, pyfunc model, registry and gate."""
    import mlflow

    from serving.offer_predictor import OfferPolicyModel, score_offers
    from training.config import Gate
    from training.registry import gate, input_example, register, start_tracking

    start_tracking(config.experiment)
    with mlflow.start_run(run_name="train-offers") as run:
        mlflow.log_params({k: str(v) for k, v in config.model_dump().items()})
        mlflow.log_params({"catalog": json.dumps(catalog.model_dump()), "rows": len(rows.frame)})
        result = fit_and_evaluate(rows, catalog=catalog, config=config, truth=truth)
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
    return result


GATE_METRIC = "test_dr_gain"


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
