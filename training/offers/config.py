"""How the offer model is trained, judged and registered: the settings of configs/offer_model.yaml."""

from __future__ import annotations

from pydantic import Field, field_validator

from features.config import Frozen
from training.offers.uplift import LEARNERS


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
