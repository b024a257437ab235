"""The HTTP request and response schemas: pydantic models BentoML validates requests with and publishes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

from modeling.lifecycle import STAGES
from serving.schema import FIELDS

CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
FeatureValue = float | str | None
# NaN, Infinity, 1e999 and integers too large for a float are refused; ints stay ints (messages quote them as sent)
InputValue = Annotated[int, Field(ge=-(10**15), le=10**15)] | Annotated[float, Field(allow_inf_nan=False)] | str | None
Stage = Literal[STAGES]  # type: ignore[valid-type]


class FeatureRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: CustomerId
    features: dict[str, InputValue] = Field(
        description="feature name -> value (a finite number, a text for category features, or null); "
        "absent features are missing"
    )
    lifecycle_base_stage: Stage | None = Field(None, description="stage without the churn rule, from the snapshot")
    lifecycle_next_action: str | None = Field(None, description="the base stage's next action, from the snapshot")
    lifecycle_contact_at: str | None = Field(
        None,
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
        description="when to send it (ISO 8601 UTC), from the snapshot",
    )


class Reason(BaseModel):
    feature: str = Field(description="the feature's name (features/descriptions.py describes each)")
    text: str = Field(description="the value in words, e.g. 'no visit for 618 days'")
    value: FeatureValue = Field(description="the raw value, for machines")
    contribution: float = Field(description="SHAP contribution to the churn log-odds (> 0: raises churn risk)")


def _field(name: str, kind, default=...):
    return (kind, Field(default, description=FIELDS[name]))


_ScoreFields = create_model(
    "_ScoreFields",
    customer_id=_field("customer_id", str),
    known=(
        bool | None,
        Field(
            description="true: scored from the feature snapshot; false: the id is not in it (every other field "
            "null); null: scored from the features the request sent"
        ),
    ),
    as_of=_field("as_of", str | None),
    churn_probability=_field("churn_probability", float | None),
    risk_band=_field("risk_band", str | None),
    churn_unscored_reason=_field("churn_unscored_reason", str | None),
    lifecycle_stage=_field("lifecycle_stage", str | None),
    next_action=_field("next_action", str | None),
    contact_at=_field("contact_at", str | None),
    recommended_offer=_field("recommended_offer", str | None),
    offer_unscored_reason=_field("offer_unscored_reason", str | None),
    predicted_value=_field("predicted_value", float | None),
    value_at_risk=_field("value_at_risk", float | None),
    expected_orders=_field("expected_orders", float | None),
    expected_orders_12m=_field("expected_orders_12m", float | None),
    expected_spend_12m=_field("expected_spend_12m", float | None),
    next_order_expected_by=_field("next_order_expected_by", str | None),
    value_unscored_reason=_field("value_unscored_reason", str | None),
    currency=_field("currency", str),
)


class Score(_ScoreFields):
    """One customer's score: the fields of a batch file row (``serving.scoring.FIELDS``) plus ``known``.

    Every offer of the offer model adds ``profit_<offer>`` (expected incremental profit vs sending nothing, in
    ``currency``, rounded to cents; null without usable features), as in the files' columns.
    """

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, float | None]
    reasons: list[Reason] | None = Field(description="with reasons=true: what raises churn risk most, in words")
    churn_model_version: str = Field(description=FIELDS["churn_model_version"])
    offer_model_version: str = Field(description=FIELDS["offer_model_version"])
    value_model_version: str = Field(description=FIELDS["value_model_version"])

    @model_validator(mode="after")
    def _profits_only(self):
        odd = [k for k in self.__pydantic_extra__ or {} if not k.startswith("profit_")]
        if odd:
            raise ValueError(f"unexpected score fields {odd}")
        return self


class ScoreResponse(BaseModel):
    scores: list[Score]
    unknown: int = Field(description="how many ids were not in the snapshot")
    models: dict[str, str]
