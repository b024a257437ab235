"""Typed settings for analytics (configs/analytics.yaml), loaded once at the edge."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from features.config import Frozen

STAGES = ("abandoned_cart", "new_buyer", "lapsed", "at_risk", "inactive", "active", "prospect")


class CohortConfig(Frozen):
    period: Literal["month", "week"] = Field("month", description="cohort = period of the first purchase")
    max_periods: int = Field(12, gt=0, description="later periods shown in the matrix and heatmap")


class Actions(Frozen):
    """What to send to each lifecycle stage."""

    abandoned_cart: str = "cart_reminder"
    new_buyer: str = "welcome_offer"
    lapsed: str = "winback_offer"
    at_risk: str = "retention_offer"
    inactive: str = "motivating_offer"
    active: str = "new_arrivals"
    prospect: str = "first_purchase_offer"


class LifecycleConfig(Frozen):
    """Lifecycle rules; the first matching stage in ``STAGES`` order wins."""

    new_buyer_days: int = Field(30, gt=0, description="new buyer = first order less than this many days ago")
    welcome_delay_hours: float = Field(0.0, ge=0, description="welcome offer this long after the first order")
    inactive_days: int = Field(30, gt=0, description="inactive = last order at least this many days ago")
    lapsed_days: int = Field(180, gt=0, description="lapsed = last order at least this many days ago")
    at_risk_threshold: float = Field(0.5, gt=0, lt=1, description="at risk = churn probability >= this")
    cart_reminder_hours: float = Field(2.0, gt=0, description="abandoned = no order this long after add_to_cart")
    cart_max_age_hours: float = Field(72.0, gt=0, description="older carts get no reminder")
    risk_bands: tuple[float, ...] = Field((0.3, 0.6), description="churn probability band edges: low|medium|high")
    actions: Actions = Actions()

    @model_validator(mode="after")
    def _order(self):
        if self.lapsed_days <= self.inactive_days:
            raise ValueError(f"lapsed_days ({self.lapsed_days}) must exceed inactive_days ({self.inactive_days})")
        if self.cart_max_age_hours < self.cart_reminder_hours:
            raise ValueError("cart_max_age_hours must be at least cart_reminder_hours")
        if list(self.risk_bands) != sorted(set(self.risk_bands)) or not all(0 < b < 1 for b in self.risk_bands):
            raise ValueError(f"risk_bands must be increasing values in (0, 1), got {self.risk_bands}")
        return self


class AnalyticsConfig(Frozen):
    cohorts: CohortConfig = CohortConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    segment: str | None = Field("region", description="customers column for KPIs by segment; null = none")
