"""The A/B report: per-arm metrics with confidence intervals, every treatment against the control, and a verdict.

Metrics (ratios of per-user sums, `tfrec.online.ab_events` defines the sums):
- ctr = clicks / impressions;
- add_to_cart_rate = add-to-carts / clicks;
- conversion_rate = requests with a purchase / requests with an impression (a proportion of requests);
- revenue_per_request = revenue (shown prices of purchases) / requests.

Each metric's interval and every test use the user-clustered delta-method variance (`tfrec.online.ab_stats`: users
are independent, impressions of one user are not). For proportions the report also gives the Wilson interval and the
classic pooled two-proportion z-test, which assume independent trials and are too narrow / too eager when a user
contributes many correlated impressions; they are shown for comparison, never used for the verdict.

With several treatment arms each is compared with the control at alpha / (number of treatments) (Bonferroni), so
the chance of any false "better" stays below alpha. The verdict is one of
  "<B> better than <A> on <metric>: +x% [lo, hi], p=..."   (or "worse")
  "no significant difference on <metric>: ...; ~N per arm would detect ±mde with the target power"
  "not enough data on <metric>: ...; need ~k× the current data (~N <unit> in <A>, ~M in <B>) to detect ±mde"
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from tfrec.online.ab_events import ArmSource, ArmSums, arm_sums
from tfrec.online.ab_stats import (
    compare_ratios, data_multiplier, power_two_sided, ratio_estimate, two_proportion_ztest, wilson_interval,
)
from tfrec.online.experiments import METRIC_NAMES, Experiment

__all__ = ["ABReport", "ArmReport", "Comparison", "METRICS", "Metric", "MetricValue", "ab_report", "compare_arms",
           "summarize"]


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    numerator: str
    denominator: str
    proportion: bool  # numerator counts a subset of the denominator (Wilson interval and pooled z-test apply)
    unit: str  # what the denominator counts, for "need ~N <unit>"


METRICS: Dict[str, Metric] = {
    "ctr": Metric("ctr", "clicks", "impressions", True, "impressions"),
    "add_to_cart_rate": Metric("add_to_cart_rate", "add_to_carts", "clicks", True, "clicks"),
    "conversion_rate": Metric("conversion_rate", "converted_requests", "requests", True, "requests"),
    "revenue_per_request": Metric("revenue_per_request", "revenue", "requests", False, "requests"),
}
if tuple(METRICS) != METRIC_NAMES:  # experiments validate primary_metric against METRIC_NAMES
    raise ImportError(f"ab_report.METRICS {tuple(METRICS)} and experiments.METRIC_NAMES {METRIC_NAMES} differ")


@dataclasses.dataclass
class MetricValue:
    """A metric of one arm: value, user-clustered interval, and (proportions) the independent-trials Wilson one."""

    value: float
    low: float
    high: float
    se: float
    wilson_low: Optional[float] = None
    wilson_high: Optional[float] = None


@dataclasses.dataclass
class ArmReport:
    arm: str
    users: int
    totals: Dict[str, float]
    metrics: Dict[str, MetricValue]
    unpriced_purchases: int = 0


@dataclasses.dataclass
class Comparison:
    """Treatment vs control on one metric at level `alpha` (already Bonferroni-split)."""

    metric: str
    control: str
    treatment: str
    control_value: float
    treatment_value: float
    diff: float
    diff_low: float
    diff_high: float
    lift: float
    lift_low: float
    lift_high: float
    z: float
    p_value: float
    p_value_independent: Optional[float]  # pooled two-proportion z-test, trials assumed independent (proportions)
    prob_better: float
    alpha: float
    significant: bool
    power_at_mde: float  # power of this test, with the current data, against a true relative effect of `mde`
    data_multiplier: float  # how many times the current data the test needs for `power` at `mde`
    control_units: float  # the metric's denominator in each arm (impressions, clicks or requests)
    treatment_units: float
    unit: str
    mde: float
    power: float
    verdict: str = ""


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _pct(x: float) -> str:
    return f"{x:+.1%}" if _finite(x) else "n/a"


def compare_arms(control: Mapping[str, np.ndarray], treatment: Mapping[str, np.ndarray], metric: str, alpha: float,
                 mde: float = 0.05, power: float = 0.8, control_name: str = "A",
                 treatment_name: str = "B", min_users: int = 2) -> Comparison:
    """Treatment vs control on `metric`, from per-user sums (`ArmSums.sums` or any field -> array mapping)."""
    m = METRICS[metric]
    c = ratio_estimate(control[m.numerator], control[m.denominator])
    t = ratio_estimate(treatment[m.numerator], treatment[m.denominator])
    d = compare_ratios(c, t, alpha)
    p_ind = two_proportion_ztest(c.numerator, c.denominator, t.numerator, t.denominator)[1] if m.proportion else None
    effect = mde * c.value if _finite(c.value) else math.nan
    enough = min(c.units, t.units) >= min_users and c.denominator > 0 and t.denominator > 0
    comparison = Comparison(
        metric=metric, control=control_name, treatment=treatment_name, control_value=c.value,
        treatment_value=t.value, diff=d.diff, diff_low=d.diff_low, diff_high=d.diff_high, lift=d.lift,
        lift_low=d.lift_low, lift_high=d.lift_high, z=d.z, p_value=d.p_value, p_value_independent=p_ind,
        prob_better=d.prob_better, alpha=alpha, significant=bool(enough and d.p_value < alpha),
        power_at_mde=power_two_sided(effect, d.se, alpha), data_multiplier=data_multiplier(effect, d.se, alpha, power),
        control_units=c.denominator, treatment_units=t.denominator, unit=m.unit, mde=mde, power=power,
    )
    comparison.verdict = _verdict(comparison, enough, c.units, t.units)
    return comparison


def _verdict(c: Comparison, enough: bool, control_users: int, treatment_users: int) -> str:
    effect = f"{_pct(c.lift)} [{_pct(c.lift_low)}, {_pct(c.lift_high)}], p={c.p_value:.3g}"
    if not enough:
        short = [f"{name} has {users} user(s) and {units:g} {c.unit}" for name, users, units in
                 ((c.control, control_users, c.control_units), (c.treatment, treatment_users, c.treatment_units))]
        return f"not enough data on {c.metric}: " + "; ".join(short)
    if c.significant:
        direction = "better" if c.diff > 0 else "worse"
        return f"{c.treatment} {direction} than {c.control} on {c.metric}: {effect}"
    if _finite(c.power_at_mde) and c.power_at_mde >= c.power:
        return (f"no significant difference on {c.metric}: {effect}; the test had {c.power_at_mde:.0%} power to "
                f"detect ±{c.mde:.0%}")
    if not _finite(c.data_multiplier):
        return f"not enough data on {c.metric}: {effect}; no variation to estimate the needed sample from"
    k = c.data_multiplier
    need_c, need_t = math.ceil(k * c.control_units), math.ceil(k * c.treatment_units)
    return (f"not enough data on {c.metric}: {effect}; need ~{k:.1f}x the current data (~{need_c:,} {c.unit} in "
            f"{c.control}, ~{need_t:,} in {c.treatment}) to detect ±{c.mde:.0%} with {c.power:.0%} power")


def _arm_report(sums: ArmSums, metrics: Sequence[str], alpha: float) -> ArmReport:
    values = {}
    for name in metrics:
        m = METRICS[name]
        est = ratio_estimate(sums.sums[m.numerator], sums.sums[m.denominator])
        low, high = est.interval(alpha)
        value = MetricValue(est.value, low, high, est.se)
        if m.proportion and est.denominator > 0 and est.numerator <= est.denominator:
            value.wilson_low, value.wilson_high = wilson_interval(est.numerator, est.denominator, alpha)
        values[name] = value
    totals = {f: sums.total(f) for f in sums.sums}
    return ArmReport(sums.arm, sums.users, totals, values, sums.unpriced_purchases)


@dataclasses.dataclass
class ABReport:
    """Per-arm figures, every treatment vs the control on every metric, and the primary metric's verdicts."""

    experiment: str
    control: str
    primary_metric: str
    alpha: float
    arms: List[ArmReport]
    comparisons: List[Comparison]

    @property
    def verdicts(self) -> List[str]:
        """One line per treatment arm, on the primary metric."""
        return [c.verdict for c in self.comparisons if c.metric == self.primary_metric]

    def comparison(self, treatment: str, metric: Optional[str] = None) -> Comparison:
        metric = metric or self.primary_metric
        for c in self.comparisons:
            if c.treatment == treatment and c.metric == metric:
                return c
        raise KeyError(f"no comparison of arm {treatment!r} on {metric!r}")

    def to_dict(self) -> dict:
        return _json_safe(dataclasses.asdict(self) | {"verdicts": self.verdicts})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def format_text(self) -> str:
        """The report as a terminal table plus the verdicts."""
        metrics = list(self.arms[0].metrics) if self.arms else []
        lines = [f"experiment {self.experiment} (control {self.control}, primary metric {self.primary_metric}, "
                 f"{1 - self.alpha:.0%} intervals, user-clustered)"]
        header = f"{'arm':<14}{'users':>8}{'requests':>10}{'impressions':>13}{'clicks':>9}{'carts':>7}{'purch.':>8}"
        lines += ["", header]
        for a in self.arms:
            t = a.totals
            lines.append(f"{a.arm:<14}{a.users:>8,}{t['requests']:>10,.0f}{t['impressions']:>13,.0f}"
                         f"{t['clicks']:>9,.0f}{t['add_to_carts']:>7,.0f}{t['purchases']:>8,.0f}")
        for name in metrics:
            lines += ["", f"{name}:"]
            for a in self.arms:
                v = a.metrics[name]
                text = f"  {a.arm:<12}{_num(v.value)}  [{_num(v.low)}, {_num(v.high)}]"
                if v.wilson_low is not None:
                    text += f"   (Wilson, independent trials: [{_num(v.wilson_low)}, {_num(v.wilson_high)}])"
                lines.append(text)
            for c in self.comparisons:
                if c.metric == name:
                    independent = c.p_value_independent
                    extra = f", independent-trials p={independent:.3g}" if _finite(independent) else ""
                    lines.append(f"  {c.treatment} vs {c.control}: {_pct(c.lift)} [{_pct(c.lift_low)}, "
                                 f"{_pct(c.lift_high)}], p={c.p_value:.3g}{extra}, P(better)={c.prob_better:.3f}")
        unpriced = sum(a.unpriced_purchases for a in self.arms)
        if unpriced:
            lines += ["", f"note: {unpriced} purchase(s) without a shown price count as 0 revenue"]
        lines += ["", "verdict:"] + [f"  {v}" for v in self.verdicts]
        return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:.4g}" if _finite(x) else "n/a"


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def summarize(experiment: Experiment, sums: Dict[str, ArmSums],
              metrics: Sequence[str] = METRIC_NAMES) -> ABReport:
    """The report from per-arm per-user sums (what `ab_report` and the simulation both feed in)."""
    metrics = list(dict.fromkeys([experiment.primary_metric, *metrics]))
    treatments = experiment.treatments
    alpha = experiment.alpha / max(1, len(treatments))
    arms = [_arm_report(sums[name], metrics, experiment.alpha) for name in experiment.arm_names]
    comparisons = [
        compare_arms(sums[experiment.control].sums, sums[t].sums, metric, alpha, experiment.mde, experiment.power,
                     experiment.control, t)
        for metric in metrics for t in treatments
    ]
    return ABReport(experiment.name, experiment.control, experiment.primary_metric, experiment.alpha, arms,
                    comparisons)


def ab_report(experiment: Experiment, events, arm_source: ArmSource = "auto",
              metrics: Sequence[str] = METRIC_NAMES) -> ABReport:
    """The A/B report of `experiment` over `events` (a Table, columns, a DataFrame or Events; see ab_events)."""
    return summarize(experiment, arm_sums(events, experiment, arm_source), metrics)
