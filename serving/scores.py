"""Scores for n customers, column-wise, as file rows (``frame``) or HTTP scores (``records``): one schema."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import CUSTOMER_ID
from modeling.encoding import is_null
from serving.champions import Models
from serving.config import ServingConfig
from serving.reasons import Reasons
from serving.schema import FIELDS, PROFIT, VALUE_TEXT


@dataclass
class Scores:
    """What :func:`serving.scoring.score` returns; ``frame()`` and ``records()`` carry ``FIELDS``, in order."""

    customer_id: np.ndarray
    as_of: np.ndarray
    churn_probability: np.ndarray  # NaN where not scored
    risk_band: np.ndarray  # None where not scored
    churn_unscored_reason: np.ndarray  # None where scored, else why not
    lifecycle_stage: np.ndarray
    next_action: np.ndarray
    contact_at: np.ndarray  # ISO text or None
    recommended_offer: np.ndarray  # None where the row has no usable features
    offer_unscored_reason: np.ndarray
    value: dict[str, np.ndarray]  # VALUE_FIELDS: floats (NaN = null) or texts (None = null)
    currency: str
    offer_profit: dict[str, np.ndarray]  # rounded to cents; NaN where no usable features
    reasons: Reasons | None
    churn_model_version: str
    offer_model_version: str
    value_model_version: str

    def __len__(self) -> int:
        return len(self.customer_id)

    def frame(self) -> pd.DataFrame:
        """Flat columns in ``FIELDS`` order: profit_<offer> after currency, reason_<k>_* before the versions."""
        n = len(self)
        out = {
            CUSTOMER_ID: pd.array(self.customer_id, dtype="string"),
            "as_of": pd.array(self.as_of, dtype="string"),
            "churn_probability": self.churn_probability,
            "risk_band": pd.array(self.risk_band, dtype="string"),
            "churn_unscored_reason": pd.array(self.churn_unscored_reason, dtype="string"),
            "lifecycle_stage": pd.array(self.lifecycle_stage, dtype="string"),
            "next_action": pd.array(self.next_action, dtype="string"),
            "contact_at": pd.array(self.contact_at, dtype="string"),
            "recommended_offer": pd.array(self.recommended_offer, dtype="string"),
            "offer_unscored_reason": pd.array(self.offer_unscored_reason, dtype="string"),
            **{k: pd.array(v, dtype="string") if k in VALUE_TEXT else v for k, v in self.value.items()},
            "currency": pd.array([self.currency] * n, dtype="string"),
        }
        for offer, profit in self.offer_profit.items():
            out[PROFIT.format(offer=offer)] = profit
        if self.reasons is not None:
            r = self.reasons
            for k in range(r.feature.shape[1]):
                out[f"reason_{k + 1}"] = pd.array(r.feature[:, k], dtype="string")
                out[f"reason_{k + 1}_text"] = pd.array(r.text[:, k], dtype="string")
                out[f"reason_{k + 1}_value"] = pd.array(_text(r.value[:, k]), dtype="string")
                out[f"reason_{k + 1}_contribution"] = r.contribution[:, k]
        out["churn_model_version"] = pd.array([self.churn_model_version] * n, dtype="string")
        out["offer_model_version"] = pd.array([self.offer_model_version] * n, dtype="string")
        out["value_model_version"] = pd.array([self.value_model_version] * n, dtype="string")
        return pd.DataFrame(out)

    def records(self, *, known: bool | None) -> list[dict]:
        """One dict per customer, the shape of the service's ``Score``; ``known``: True from the snapshot, None
        when the caller sent the features."""
        offers = list(self.offer_profit)
        profits = np.column_stack([self.offer_profit[o] for o in offers]) if offers else np.empty((len(self), 0))
        keys = [PROFIT.format(offer=o) for o in offers]
        value = {k: v.tolist() for k, v in self.value.items()}
        out = []
        for i in range(len(self)):
            p = float(self.churn_probability[i])
            record = {
                CUSTOMER_ID: self.customer_id[i],
                "known": known,
                "as_of": self.as_of[i],
                "churn_probability": None if p != p else p,
                "risk_band": self.risk_band[i],
                "churn_unscored_reason": self.churn_unscored_reason[i],
                "lifecycle_stage": self.lifecycle_stage[i],
                "next_action": self.next_action[i],
                "contact_at": self.contact_at[i],
                "recommended_offer": self.recommended_offer[i],
                "offer_unscored_reason": self.offer_unscored_reason[i],
            }
            record.update({k: None if is_null(v[i]) else v[i] for k, v in value.items()})
            record["currency"] = self.currency
            record.update({k: None if v != v else v for k, v in zip(keys, profits[i].tolist(), strict=True)})
            record["reasons"] = None if self.reasons is None else self.reasons.row(i)
            record["churn_model_version"] = self.churn_model_version
            record["offer_model_version"] = self.offer_model_version
            record["value_model_version"] = self.value_model_version
            out.append(record)
        return out


def unknown_record(customer_id: str, models: Models, config: ServingConfig) -> dict:
    """An id the snapshot does not hold: marked unknown, every other field null, the request still succeeds."""
    record = {name: None for name in FIELDS}
    offers = () if models.offer is None else models.offer.offers
    record.update({CUSTOMER_ID: customer_id, "known": False, "currency": config.currency})
    record.update({PROFIT.format(offer=o): None for o in offers})
    record.update(
        {
            "reasons": None,
            "churn_model_version": models.churn_label,
            "offer_model_version": models.offer_note,
            "value_model_version": models.value_label,
        }
    )
    return record


def _text(values: np.ndarray) -> list:
    return [None if v is None else str(v) for v in values]
