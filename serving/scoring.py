"""THE scoring function: feature rows in, one score per customer out. HTTP, batch and Spark call it.

A score holds customer_id, as_of, churn_probability, risk_band,
churn_unscored_reason, lifecycle_stage, recommended_offer (``none`` when no offer
pays or no offer model is loaded), the expected incremental profit of each
offer, optionally the top reasons (the features that push this customer's churn
risk up most, with their values and SHAP contributions in log-odds), and the
versions of the models used.

Only buyers get a churn probability: the churn model learned from customers with
an order before the cutoff (``features.labels``), so a customer with none (the
feature ``sales_orders_all`` is 0 or missing, ``modeling.churn_model.buyers``, the one
place this is decided) gets churn_probability and risk_band null, no reasons, and
churn_unscored_reason ``"no order before the as-of date"``. Without a churn
model every customer is unscored and the reason is the model's absence
(``Models.churn_note``). Offers do not depend on the churn model: prospects and
shops without a churn champion still get them.

The lifecycle stage needs order and cart timestamps that a feature row does not
carry, so callers pass the *base* stage (``modeling.lifecycle.lifecycle``
without probabilities, which the batch job stores in the snapshot); the scorer
adds the one rule that needs the model: a buyer whose base stage is inactive or
active becomes ``at_risk`` at ``at_risk_threshold`` or above. That is exactly the
rule order of ``modeling.lifecycle`` (at_risk comes after abandoned_cart,
new_buyer and lapsed, and needs an order). Without a base stage the stage is null.

Customer value (``Models.value``, ``serving.value_fields``) follows the churn rule: only
buyers get one. The fields and their order are ``serving.schema.FIELDS``; ``serving.scores``
writes them as file rows or HTTP scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.contract import CUSTOMER_ID, NO_OFFER
from modeling.churn_model import buyers
from modeling.encoding import is_null
from modeling.lifecycle import AT_RISK, at_risk, risk_bands
from serving.champions import Models
from serving.config import ServingConfig
from serving.job import ScoringJob
from serving.reasons import no_reasons, top_reasons
from serving.schema import BASE_ACTION, BASE_CONTACT, BASE_STAGE, NO_FEATURES, NO_ORDER, as_of_text, instant_texts
from serving.scores import Scores
from serving.value_fields import value_fields


def stages(base: Sequence | None, p: np.ndarray, threshold: float) -> np.ndarray:
    """The lifecycle stage: the base stage, or at_risk where the churn rule fires first (never for a null p)."""
    if base is None:
        return np.full(len(p), None, dtype=object)
    return at_risk(np.array([None if is_null(s) else str(s) for s in base], dtype=object), p, threshold)


def usable(columns: Mapping, n: int, features: Sequence[str]) -> np.ndarray:
    """Rows with at least one feature the models read present (not null)."""
    if isinstance(columns, pd.DataFrame):
        present = [f for f in features if f in columns.columns]
        if not present:
            return np.zeros(n, dtype=bool)
        return columns[present].notna().any(axis=1).to_numpy()
    out = np.zeros(n, dtype=bool)
    for f in features:
        values = columns.get(f)
        if values is not None:
            out |= np.array([not is_null(v) for v in values], dtype=bool)
            if out.all():  # usually after the first feature: the rest cannot change the answer
                break
    return out


def _texts(columns: Mapping, name: str, n: int) -> np.ndarray:
    """A text column as an object array with None for missing (vectorised for pandas)."""
    if name not in columns:
        return np.full(n, None, dtype=object)
    values = columns[name]
    if isinstance(values, pd.Series):
        return values.astype("string").to_numpy(dtype=object, na_value=None)
    return np.array([None if is_null(v) else str(v) for v in values], dtype=object)


def lifecycle_fields(columns: Mapping, n: int, stage: np.ndarray, as_of_values: np.ndarray, config: ServingConfig):
    """next_action and contact_at for the final stage: the base stage's from the lifecycle columns; at_risk (the
    scorer's rule) gets ``lifecycle.actions.at_risk``, at the base stage's time (the as-of instant), else the as-of date."""
    action, contact = _texts(columns, BASE_ACTION, n), _texts(columns, BASE_CONTACT, n)
    risky = stage == AT_RISK
    if risky.any():  # the base stage was inactive or active, contacted at the as-of instant: keep that time
        action[risky] = config.lifecycle.actions.at_risk
        unknown = risky & np.array([c is None for c in contact], dtype=bool)
        contact[unknown] = instant_texts(as_of_values[unknown])
    return action, contact


def score(
    columns: Mapping,
    customer_ids: Sequence[str],
    *,
    as_of,
    models: Models,
    config: ServingConfig,
    base_stage: Sequence | None = None,
    reasons: bool = False,
) -> Scores:
    """Score n customers from their feature columns.

    ``columns`` maps each feature name to n values (a DataFrame whose rows are in
    ``customer_ids`` order, or a dict of lists), optionally with the lifecycle columns
    (``LIFECYCLE_COLUMNS``); ``as_of`` is the date for all (``serving.schema.as_of_text``); ``base_stage``
    the lifecycle stage without the churn rule (or None: then the column ``BASE_STAGE`` if present).
    A row where every feature the models read is missing gets no churn probability, no offer and
    ``offer_unscored_reason`` saying so.
    """
    n = len(customer_ids)
    if n == 0:
        raise ValueError("nothing to score: the customer list is empty")
    if base_stage is None and BASE_STAGE in columns:
        base_stage = columns[BASE_STAGE]
    p = np.full(n, np.nan)
    unscored = np.full(n, None, dtype=object)
    why = no_reasons(n, config.reasons_top_k) if reasons else None
    some = usable(columns, n, models.features)
    if models.churn is None:
        unscored[:] = models.churn_label
    else:
        X = models.churn.encode(columns, n)
        scored = buyers(columns, n) & some
        unscored[~scored] = NO_ORDER
        unscored[~some] = NO_FEATURES
        if scored.all():
            p = models.churn.predict(X)
        elif scored.any():
            p[scored] = models.churn.predict(X[scored])
        if reasons:
            contributions = np.zeros(X.shape)
            if scored.any():
                contributions[scored] = models.churn.contributions(X[scored])
            why = top_reasons(contributions, X, columns, models, config.reasons_top_k, config.currency)
    offer_why = np.full(n, None, dtype=object)
    if models.offer is not None:
        _, profit, chosen = models.offer.score(columns, n)
        profit = np.round(profit, 2)
        if not some.all():
            profit[~some] = np.nan
            chosen = chosen.astype(object)
            chosen[~some] = None
            offer_why[~some] = NO_FEATURES
        offer_profit = {o: profit[:, k] for k, o in enumerate(models.offer.offers)}
    else:
        offer_profit, chosen = {}, np.full(n, NO_OFFER, dtype=object)
    as_of_values = np.full(n, as_of_text(as_of), dtype=object)
    bands = risk_bands(np.nan_to_num(p), config.lifecycle.risk_bands)
    bands[np.isnan(p)] = None
    stage = stages(base_stage, p, config.lifecycle.at_risk_threshold)
    action, contact = lifecycle_fields(columns, n, stage, as_of_values, config)
    value = value_fields(columns, n, p, as_of_values, models)
    return Scores(
        customer_id=np.asarray(customer_ids, dtype=object),
        as_of=as_of_values,
        churn_probability=p,
        risk_band=bands,
        churn_unscored_reason=unscored,
        lifecycle_stage=stage,
        next_action=action,
        contact_at=contact,
        recommended_offer=chosen,
        offer_unscored_reason=offer_why,
        value=value,
        currency=config.currency,
        offer_profit=offer_profit,
        reasons=why,
        churn_model_version=models.churn_label,
        offer_model_version=models.offer_note,
        value_model_version=models.value_label,
    )


def score_frame(frame: pd.DataFrame, job: ScoringJob) -> pd.DataFrame:
    """Batch/Spark form: a feature frame (customer_id index or column, optional lifecycle columns) -> flat scores."""
    if CUSTOMER_ID in frame.columns:
        frame = frame.set_index(CUSTOMER_ID)
    ids = frame.index.astype("string").to_numpy(dtype=object)
    return score(frame, ids, as_of=job.as_of, models=job.models, config=job.config, reasons=job.reasons).frame()
