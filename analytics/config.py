"""Typed analytics settings, loaded once at the edge: configs/analytics.yaml, with configs/lifecycle.yaml (shared
with serving) as the ``lifecycle`` section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from features.config import Frozen, load_config
from modeling.lifecycle import LifecycleConfig


class CohortConfig(Frozen):
    """How customers are grouped into cohorts and how far the matrix reaches."""

    period: Literal["month", "week"] = Field("month", description="cohort = period of the first purchase")
    max_periods: int = Field(12, gt=0, description="later periods shown in the matrix and heatmap")


class AnalyticsConfig(Frozen):
    """What the report and the cohort files show."""

    cohorts: CohortConfig = CohortConfig()
    lifecycle: LifecycleConfig = Field(LifecycleConfig(), description="from lifecycle.yaml: stages, risk bands")
    segment: str | None = Field("region", description="customers column for KPIs by segment; null = none")

    @classmethod
    def load(cls, folder: str | Path) -> AnalyticsConfig:
        """``analytics.yaml`` with ``lifecycle.yaml`` as its ``lifecycle`` section (a ``lifecycle`` key in
        ``analytics.yaml`` is refused)."""
        return load_config(cls, Path(folder) / "analytics.yaml", lifecycle=Path(folder) / "lifecycle.yaml")
