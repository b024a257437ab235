"""BG/NBD, the buy-till-you-die model of Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way",
Marketing Science 24(2): log-likelihood eq. (6), P(alive) eq. (13), expected purchases eq. (10). Time is in weeks.

Each customer is summarised by ``x`` (repeat purchases), ``t_x`` (weeks from
the first purchase to the last) and ``T`` (weeks from the first purchase to the
cutoff). The churn baseline (which counts distinct purchase days) and the
``lifetime`` feature builder (which counts orders) both use these functions.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

WEEK_DAYS = 7.0
PARAMS = ("r", "alpha", "a", "b")


def log_likelihood(params, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood, FHL (2005) eq. (6), for params (r, alpha, a, b)."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[tuple[float, float, float, float], bool]:
    """Maximum-likelihood (r, alpha, a, b) and whether the optimiser converged."""
    x, t_x, T = (np.asarray(v, dtype="float64") for v in (x, t_x, T))
    T = np.maximum(T, 1e-3)

    def nll(log_params):
        return -log_likelihood(np.exp(log_params), x, t_x, T).sum() / len(x)

    start = np.log([1.0, max(float(np.mean(T)), 1.0), 1.0, 1.0])
    res = minimize(nll, start, method="L-BFGS-B", bounds=[(-10, 10)] * 4)
    return tuple(float(v) for v in np.exp(res.x)), bool(res.success)


def p_alive(params, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """FHL (2005) eq. (13): P(alive | x, t_x, T); a customer with no repeat purchase is alive."""
    r, alpha, a, b = params
    log_ratio = np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) + (r + x) * np.log((alpha + T) / (alpha + t_x))
    return np.where(x > 0, 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700))), 1.0)


def p_no_purchase(params, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weeks: float) -> np.ndarray:
    """P(no purchase in (T, T + weeks]) = 1 - P(alive) + P(alive) * ((alpha+T) / (alpha+T+weeks))^(r+x).

    Dropout happens only right after a purchase, so a customer alive at T makes no purchase in
    the window with probability E[exp(-lambda weeks)] under the posterior Gamma(r+x, alpha+T).
    """
    r, alpha, _, _ = params
    alive = p_alive(params, x, t_x, T)
    none_if_alive = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + weeks)))
    return 1.0 - alive + alive * none_if_alive


def expected_purchases(params, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weeks: float) -> np.ndarray:
    """FHL (2005) eq. (10): E[purchases in (T, T + weeks] | x, t_x, T], the value models' expected orders."""
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, dtype="float64") for v in (x, t_x, T))
    z = weeks / (alpha + T + weeks)
    head = (a + b + x - 1) / (a - 1)
    tail = 1.0 - ((alpha + T) / (alpha + T + weeks)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    dead = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return head * tail / (1.0 + dead)


def days_to_next_order(params, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Days after the cutoff by which P(ordered again) reaches 50%; NaN where P(alive) <= 0.5 (it never does).

    Solves P(alive) * (1 - ((alpha+T) / (alpha+T+t))^(r+x)) = 0.5 for t, the complement of ``p_no_purchase``.
    """
    r, alpha, _, _ = params
    x, T = np.asarray(x, dtype="float64"), np.asarray(T, dtype="float64")
    alive = p_alive(params, x, t_x, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        weeks = (alpha + T) * ((1.0 - 0.5 / alive) ** (-1.0 / (r + x)) - 1.0)
    return np.where(alive > 0.5, weeks * WEEK_DAYS, np.nan)
