"""What one conversion is worth, and where that number comes from.

A conversion earns its order value x ``margin_rate``, or the fixed
``margin_per_order`` when the catalog sets one. The order value per send is,
in this order:

1. the customer's own average order (``order_value_feature``) when positive;
2. for customers without one (no orders yet): the log's revenue over converted
   sends (its mean unless ``revenue_statistic`` says median), else the mean
   of the other customers' own averages;
3. with no order history and no revenue in the log: only ``margin_per_order``
   can value a conversion (when no offer costs a share of the order);
   otherwise training is refused with a message, never a guess.

:class:`ConversionValue` carries the default and a sentence saying which
source covers how many sends; ``train-offers`` prints it and the model card
and the MLflow run repeat it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.config import OfferCatalog
from features.contract import OFFERS
from training.offers.errors import OfferLogError

STATISTICS = ("mean", "median")


@dataclass(frozen=True)
class ConversionValue:
    """The order value used where a customer has none, and how each send's value was sourced."""

    default_order_value: float
    source: str  # own_order_value | log_revenue | own_order_value_mean | margin_per_order
    description: str
    own_share: float  # share of sends valued by the customer's own average order


def _positive(values: pd.Series) -> pd.Series:
    v = pd.to_numeric(values, errors="coerce")
    return v[np.isfinite(v) & (v > 0)]


def _stat(values: pd.Series, statistic: str) -> float:
    return float(values.mean() if statistic == "mean" else values.median())


def conversion_value(
    frame: pd.DataFrame, *, order_value_feature: str | None, catalog: OfferCatalog, statistic: str = "mean"
) -> ConversionValue:
    """Decide the default order value and describe every send's source; raises OfferLogError when there is none."""
    if statistic not in STATISTICS:
        raise OfferLogError(f"revenue_statistic must be one of {STATISTICS}, got {statistic!r}")
    n = len(frame)
    own = (
        pd.to_numeric(frame[order_value_feature], errors="coerce")
        if order_value_feature and order_value_feature in frame.columns
        else pd.Series(np.nan, index=frame.index)
    )
    has_own = (np.isfinite(own) & (own > 0)).to_numpy()
    revenue = pd.Series(dtype=float)
    if OFFERS.revenue in frame.columns:
        converted = frame[OFFERS.converted].to_numpy() == 1
        revenue = _positive(frame.loc[converted, OFFERS.revenue])
    rate = f"x margin_rate {catalog.margin_rate:g}"
    if catalog.margin_per_order is not None:
        worth = f"a conversion is worth margin_per_order {catalog.margin_per_order:g}"
        shares = [o.name for o in catalog.offers if o.cost_share_of_order > 0]
        if has_own.any() or len(revenue):
            default, where = _fallback(own[has_own], revenue, statistic)
            return ConversionValue(
                default,
                "margin_per_order",
                f"{worth} (configs/offers.yaml); order values for share-of-order costs: the customer's own "
                f"average order for {has_own.mean():.0%} of sends, {where} {default:.2f} for the rest",
                float(has_own.mean()),
            )
        if shares:
            raise OfferLogError(
                f"offers {shares} cost a share of the order value, but there is no order value: no customer has "
                f"an order history ({order_value_feature}) and the offers log has no revenue; add revenue to "
                "the offers log or an orders table"
            )
        return ConversionValue(0.0, "margin_per_order", f"{worth} (configs/offers.yaml) for every send", 0.0)
    if has_own.all():
        default, where = _fallback(own, revenue, statistic)
        return ConversionValue(
            default,
            "own_order_value",
            f"the customer's own average order ({order_value_feature}) {rate} for every send; customers "
            f"without orders when scored get {where} {default:.2f}",
            1.0,
        )
    if not has_own.any() and not len(revenue):
        raise OfferLogError(
            f"nothing says what a conversion is worth: none of the {n:,} sends' customers has an order history "
            f"({order_value_feature}) and the offers log has no revenue on converted sends; add a revenue column "
            "to the offers log, an orders table, or set margin_per_order in configs/offers.yaml"
        )
    default, where = _fallback(own[has_own], revenue, statistic)
    source = "log_revenue" if len(revenue) else "own_order_value_mean"
    if not has_own.any():
        text = f"{where} {default:.2f} {rate} for every send (no customer has an order history)"
    else:
        text = (
            f"the customer's own average order ({order_value_feature}) {rate} for {has_own.mean():.0%} of sends; "
            f"{where} {default:.2f} {rate} for the other {(~has_own).sum():,} (no orders yet)"
        )
    return ConversionValue(default, source, text, float(has_own.mean()))


def _fallback(own: pd.Series, revenue: pd.Series, statistic: str) -> tuple[float, str]:
    if len(revenue):
        return _stat(revenue, statistic), f"the log's {statistic} revenue per conversion ({len(revenue):,} conversions)"
    return _stat(own, statistic), f"the {statistic} of the other customers' own average orders"
