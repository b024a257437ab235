"""Where churn champions registered before the ``modeling`` package find their classifier's class (skops)."""

from modeling.prior_boosting import Prior, PriorBoostedLGBM

__all__ = ["Prior", "PriorBoostedLGBM"]
