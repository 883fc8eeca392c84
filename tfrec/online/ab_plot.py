"""The A/B report over time: cumulative metrics per arm with their user-clustered confidence bands, as a PNG.

Cumulative (everything up to the end of each hour or day) rather than per-bucket values, because that is what the
final verdict is computed on and how it converged: early days swing, bands narrow as users accrue.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Dict, List, Sequence

import numpy as np

from tfrec.online.ab_events import ArmSource, arm_sums, event_columns
from tfrec.online.ab_report import METRICS
from tfrec.online.ab_stats import ratio_estimate
from tfrec.online.experiments import Experiment

HOUR, DAY = 3_600, 86_400
DEFAULT_METRICS = ("ctr", "conversion_rate", "revenue_per_request")

__all__ = ["MetricSeries", "metric_series", "plot_over_time", "time_edges"]


def time_edges(timestamps: np.ndarray, bucket: str = "auto") -> np.ndarray:
    """Bucket edges aligned to UTC hours or days covering `timestamps`; "auto" = hours for spans up to 3 days."""
    if len(timestamps) == 0:
        raise ValueError("no events in the experiment's window: nothing to plot")
    first, last = float(np.min(timestamps)), float(np.max(timestamps))
    if bucket == "auto":
        bucket = "hour" if last - first <= 3 * DAY else "day"
    if bucket not in ("hour", "day"):
        raise ValueError(f"bucket must be auto, hour or day, got {bucket!r}")
    step = HOUR if bucket == "hour" else DAY
    start = math.floor(first / step) * step
    return np.arange(start, last + step + 1, step, dtype=np.float64)[: int((last - start) // step) + 2]


@dataclasses.dataclass
class MetricSeries:
    """Cumulative value and interval of one metric of one arm at the end of each bucket."""

    arm: str
    metric: str
    ends: np.ndarray  # bucket end times (epoch seconds)
    value: np.ndarray
    low: np.ndarray
    high: np.ndarray


def metric_series(experiment: Experiment, events, metrics: Sequence[str] = DEFAULT_METRICS, bucket: str = "auto",
                  arm_source: ArmSource = "auto", alpha: float = 0.05) -> List[MetricSeries]:
    """Cumulative per-arm series of `metrics` (the same estimator as the report, evaluated at each bucket end)."""
    cols = event_columns(events)
    ts = cols["timestamp"]
    inside = np.ones(len(ts), bool)
    if experiment.start is not None:
        inside &= ts >= experiment.start
    if experiment.end is not None:
        inside &= ts < experiment.end
    edges = time_edges(ts[inside], bucket)
    sums = arm_sums(cols, experiment, arm_source, edges=edges, cumulative=True)
    out = []
    for arm in experiment.arm_names:
        s = sums[arm].sums
        for name in metrics:
            m = METRICS[name]
            num, den = s[m.numerator], s[m.denominator]
            est = [_estimate(num[:, b], den[:, b], alpha) for b in range(len(edges) - 1)]
            value, low, high = (np.array(v, dtype=np.float64) for v in zip(*est)) if est else (np.zeros(0),) * 3
            out.append(MetricSeries(arm, name, edges[1:], value, low, high))
    return out


def _estimate(num: np.ndarray, den: np.ndarray, alpha: float):
    seen = (num != 0) | (den != 0)  # users who have shown up by this time
    est = ratio_estimate(num[seen], den[seen])
    low, high = est.interval(alpha)
    return est.value, low, high


def plot_over_time(experiment: Experiment, events, path: str, metrics: Sequence[str] = DEFAULT_METRICS,
                   bucket: str = "auto", arm_source: ArmSource = "auto") -> str:
    """Writes a PNG with one panel per metric: each arm's cumulative value and its 95% band over time."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    series = metric_series(experiment, events, metrics, bucket, arm_source)
    by_metric: Dict[str, List[MetricSeries]] = {}
    for s in series:
        by_metric.setdefault(s.metric, []).append(s)
    fig, axes = plt.subplots(len(by_metric), 1, figsize=(9, 2.8 * len(by_metric)), sharex=True, squeeze=False)
    for ax, (name, arms) in zip(axes[:, 0], by_metric.items()):
        for s in arms:
            when = np.asarray(s.ends, dtype="datetime64[s]").astype(object)
            (line,) = ax.plot(when, s.value, label=s.arm, linewidth=1.6)
            ax.fill_between(when, s.low, s.high, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_ylabel(name.replace("_", " "))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    fig.autofmt_xdate()
    fig.suptitle(f"{experiment.name}: cumulative metrics per arm (95% user-clustered bands)")
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
