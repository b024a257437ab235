"""Typed serving settings (configs/serving.yaml), loaded once at the edge and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from features.config import ROOT, Frozen, load_config
from modeling.lifecycle import LifecycleConfig


class BatchConfig(Frozen):
    chunk_size: int = Field(100_000, gt=0, description="customers scored and written per chunk")


PRIORITIES = ("profit", "value_at_risk_x_profit")


class CampaignConfig(Frozen):
    """The campaign export's budget: how many incentives go out, and who gets them first."""

    max_offers: int | None = Field(
        None, ge=0, description="at most this many incentives in the campaign export; the rest get offer none"
    )
    priority: str = Field(
        "profit",
        pattern="^(" + "|".join(PRIORITIES) + ")$",
        description="who gets the budget first: profit (expected incremental profit) or value_at_risk_x_profit",
    )


class DriftConfig(Frozen):
    psi: float = Field(0.25, gt=0, description="conventional PSI alarm level; a feature must exceed it to drift")
    confidence: float = Field(
        0.99, gt=0.5, lt=1, description="and exceed this quantile of PSI under no drift for the population sizes"
    )


class ServingConfig(Frozen):
    churn_model: str | None = Field(
        "retain-churn", description="registered churn model name; optional (no champion: churn fields are null)"
    )
    offer_model: str | None = Field("retain-offers", description="registered offer model name; optional")
    alias: str = Field("champion", description="the alias the service and batch load")
    currency: str = Field(
        "EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of amounts and profits (the shop's own currency)"
    )
    max_customers_per_request: int = Field(1000, gt=0, description="larger requests are refused with 413")
    reasons_top_k: int = Field(3, ge=1, le=20, description="reasons returned per customer when asked")
    store: str = Field("outputs/feature_store.sqlite", description="feature snapshot file, relative to the root")
    api_key_env: str = Field("RETAIN_API_KEY", description="env var holding the bearer API key; unset = no auth")
    workers: int = Field(2, ge=1, description="BentoML worker processes")
    requests_per_connection: int = Field(
        100, ge=0, description="a worker closes a keep-alive connection after this many of its responses; 0 = never"
    )
    batch: BatchConfig = BatchConfig()
    drift: DriftConfig = DriftConfig()
    campaign: CampaignConfig = CampaignConfig()
    lifecycle: LifecycleConfig = Field(
        LifecycleConfig(), description="from lifecycle.yaml: stages, risk bands, at_risk"
    )

    @classmethod
    def load(cls, folder: str | Path) -> ServingConfig:
        """``serving.yaml`` with ``lifecycle.yaml`` as its ``lifecycle`` section."""
        return load_config(cls, Path(folder) / "serving.yaml", lifecycle=Path(folder) / "lifecycle.yaml")

    @property
    def store_path(self) -> Path:
        path = Path(self.store)
        return path if path.is_absolute() else ROOT / path
