"""The statistics behind A/B reports: Wilson intervals, the two-proportion z-test, and user-clustered ratio metrics.

Why clustering matters: impressions of one request (and requests of one user) are correlated, so treating every
impression as an independent trial understates the variance and flags A/A tests far more often than alpha. Users are
the unit of randomisation, so a metric such as CTR = sum(clicks) / sum(impressions) is a ratio of per-user sums and
its variance comes from the delta method over users (Deng et al., "Applying the Delta Method in Metric Analytics"):

    R = sum_u y_u / sum_u x_u,   se(R)^2 = n / (n - 1) * sum_u (y_u - R x_u)^2 / (sum_u x_u)^2

which assumes users are independent (not impressions). Arms are independent samples, so the difference of two arms
has se^2 = se_A^2 + se_B^2 and z = (R_B - R_A) / se. The relative lift's interval uses the delta method on
log(R_B / R_A): se_log^2 = (se_A / R_A)^2 + (se_B / R_B)^2. `prob_better` = Phi(z) is P(B > A) under a flat prior
and this normal likelihood (the Bayesian reading of the same numbers).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Tuple

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = [
    "Difference", "RatioEstimate", "compare_ratios", "normal_quantile", "power_two_sided", "ratio_estimate",
    "two_proportion_ztest", "two_sided_p", "wilson_interval",
]


def normal_quantile(q: float) -> float:
    """Phi^-1(q) of the standard normal."""
    return float(ndtri(q))


def two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z."""
    return float(2.0 * ndtr(-abs(z))) if math.isfinite(z) else (0.0 if not math.isnan(z) else math.nan)


def wilson_interval(successes: float, trials: float, alpha: float = 0.05) -> Tuple[float, float]:
    """Wilson score interval of a proportion (independent trials); (nan, nan) without trials.

    centre = (p + z^2 / 2n) / (1 + z^2 / n),  half = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)
    """
    if trials <= 0:
        return math.nan, math.nan
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, trials], got {successes} of {trials}")
    z = normal_quantile(1 - alpha / 2)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_ztest(x_a: float, n_a: float, x_b: float, n_b: float) -> Tuple[float, float]:
    """(z, two-sided p) of the pooled two-proportion z-test of B vs A, trials independent:
    z = (p_B - p_A) / sqrt(p (1 - p) (1/n_A + 1/n_B)) with the pooled p = (x_A + x_B) / (n_A + n_B)."""
    if n_a <= 0 or n_b <= 0:
        return math.nan, math.nan
    pooled = (x_a + x_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return (0.0, 1.0) if x_a / n_a == x_b / n_b else (math.copysign(math.inf, x_b / n_b - x_a / n_a), 0.0)
    z = (x_b / n_b - x_a / n_a) / se
    return z, two_sided_p(z)


@dataclasses.dataclass
class RatioEstimate:
    """sum(y) / sum(x) over independent units (users) with its delta-method standard error."""

    value: float
    se: float
    units: int
    numerator: float
    denominator: float

    def interval(self, alpha: float = 0.05) -> Tuple[float, float]:
        z = normal_quantile(1 - alpha / 2)
        return self.value - z * self.se, self.value + z * self.se


def ratio_estimate(numerator: np.ndarray, denominator: np.ndarray) -> RatioEstimate:
    """R = sum(y) / sum(x) and se(R) by the delta method over units (module docstring); nan when undefined."""
    y = np.asarray(numerator, dtype=np.float64)
    x = np.asarray(denominator, dtype=np.float64)
    n, total_y, total_x = len(x), float(y.sum()), float(x.sum())
    if total_x <= 0:
        return RatioEstimate(math.nan, math.nan, n, total_y, total_x)
    r = total_y / total_x
    if n < 2:
        return RatioEstimate(r, math.nan, n, total_y, total_x)
    d = y - r * x
    se = math.sqrt(n / (n - 1) * float(np.dot(d, d))) / total_x
    return RatioEstimate(r, se, n, total_y, total_x)


@dataclasses.dataclass
class Difference:
    """Treatment minus control on one ratio metric: absolute and relative, with intervals and tests."""

    diff: float
    diff_low: float
    diff_high: float
    lift: float  # R_B / R_A - 1
    lift_low: float
    lift_high: float
    se: float
    z: float
    p_value: float
    prob_better: float  # P(treatment > control), flat prior, normal likelihood


def compare_ratios(control: RatioEstimate, treatment: RatioEstimate, alpha: float = 0.05) -> Difference:
    """B vs A with the user-clustered variance (module docstring); intervals at level 1 - alpha."""
    zq = normal_quantile(1 - alpha / 2)
    diff = treatment.value - control.value
    se = math.sqrt(control.se**2 + treatment.se**2)
    if se > 0:
        z = diff / se
    else:  # both arms without variance: equal is no evidence, different is certain (degenerate data)
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff) if math.isfinite(diff) else math.nan
    lift = lift_low = lift_high = math.nan
    if control.value > 0 and treatment.value > 0:
        lift = treatment.value / control.value - 1
        se_log = math.hypot(control.se / control.value, treatment.se / treatment.value)
        lift_low = math.exp(math.log1p(lift) - zq * se_log) - 1
        lift_high = math.exp(math.log1p(lift) + zq * se_log) - 1
    elif control.value > 0:
        lift = treatment.value / control.value - 1
    prob = float(ndtr(z)) if not math.isnan(z) else math.nan
    return Difference(diff, diff - zq * se, diff + zq * se, lift, lift_low, lift_high, se, z, two_sided_p(z), prob)


def power_two_sided(effect: float, se: float, alpha: float) -> float:
    """Probability a two-sided z-test at level alpha rejects when the true difference is `effect` with standard
    error `se`: Phi(effect/se - z) + Phi(-effect/se - z), z = Phi^-1(1 - alpha/2)."""
    if not (se > 0) or math.isnan(effect):
        return math.nan
    z = normal_quantile(1 - alpha / 2)
    return float(ndtr(effect / se - z) + ndtr(-effect / se - z))


def data_multiplier(effect: float, se: float, alpha: float, power: float) -> float:
    """How many times the current data (same split, same per-user behaviour) a test needs to detect `effect` with
    the given power: se shrinks as 1/sqrt(k), so k = se^2 (z_{1-alpha/2} + z_power)^2 / effect^2."""
    if not (se > 0) or not (effect > 0):
        return math.nan
    z = normal_quantile(1 - alpha / 2) + normal_quantile(power)
    return (se * z / effect) ** 2
