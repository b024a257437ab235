"""Gamma-Gamma, the spend model of Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer
Base Analysis", Journal of Marketing Research 42(4), as set out in Hardie's note "The Gamma-Gamma Model of
Monetary Value" (2013).

A customer's order values are Gamma(p, nu) around their own mean p / nu, and nu is Gamma(q, gamma) over the
population, independent of how often they buy. A customer is summarised by ``x`` (orders) and ``m`` (their
mean value); the conditional expectation shrinks ``m`` towards the population mean ``p gamma / (q - 1)``,
the less the fewer orders stand behind it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln

PARAMS = ("p", "q", "gamma")


def log_likelihood(params, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per-customer log-density of the mean ``m`` of ``x`` order values (Hardie 2013, eq. 1)."""
    p, q, gamma = params
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + m * x)
    )


def fit(x: np.ndarray, m: np.ndarray) -> tuple[tuple[float, float, float], bool]:
    """Maximum-likelihood (p, q, gamma) on repeat buyers (``x`` >= 2, ``m`` > 0) and whether the optimiser
    converged; one order says nothing about how a customer's values spread around their mean."""
    x, m = np.asarray(x, dtype="float64"), np.asarray(m, dtype="float64")
    keep = (x >= 2) & (m > 0)
    if not keep.any():
        raise ValueError("Gamma-Gamma needs customers with two or more orders of positive value")
    x, m = x[keep], m[keep]

    def nll(log_params):
        return -log_likelihood(np.exp(log_params), x, m).sum() / len(x)

    start = np.log([1.0, 2.0, float(np.mean(m))])
    res = minimize(nll, start, method="L-BFGS-B", bounds=[(-10, 10), (-10, 10), (-15, 30)])
    return tuple(float(v) for v in np.exp(res.x)), bool(res.success)


def expected_order_value(params, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E[order value | x orders of mean m] = (gamma + m x) p / (p x + q - 1); a weighted mean of the
    population mean and ``m``."""
    p, q, gamma = params
    x, m = np.asarray(x, dtype="float64"), np.asarray(m, dtype="float64")
    return (gamma + m * x) * p / (p * x + q - 1)
