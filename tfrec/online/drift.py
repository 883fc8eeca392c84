"""Drift monitoring: how far recent traffic has moved from the training data, per feature and in calibration.

Per feature, the population stability index over bins fixed on the reference (quantile bins for numbers, the most
frequent values plus "other" for categories; missing values get their own bin):

    PSI = sum_b (q_b - p_b) * ln(q_b / p_b)        p = reference shares, q = recent shares (floored at 1e-4)

(rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 shifted), and for numbers the two-sample Kolmogorov-Smirnov
statistic D = max_x |F_ref(x) - F_recent(x)| with its asymptotic p-value. Calibration drift compares a model's
predicted click probability with the observed click rate per score bucket (buckets fixed on the reference scores),
with each window's ECE (`tfrec.training.metrics`). Everything is a dict of floats, and `DriftGauges` exports it as
prometheus-client gauges on a registry the caller owns.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from tfrec.data.schema import Table, category_levels
from tfrec.online.config import DriftConfig
from tfrec.online.events import Event, events_to_table
from tfrec.training.metrics import expected_calibration_error

__all__ = [
    "CalibrationDrift", "DriftGauges", "DriftMonitor", "DriftReport", "FeatureDrift", "calibration_drift", "categorical_psi",
    "drift_report", "ks_test", "numeric_psi", "traffic_features",
]

PSI_FLOOR = 1e-4  # share given to an empty bin, so one unseen value does not make PSI infinite
OTHER = "<other>"
MISSING = "<missing>"


def _shares(codes: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n_bins).astype(np.float64)
    shares = counts / max(counts.sum(), 1.0)
    return np.maximum(shares, PSI_FLOOR)


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum((q - p) * np.log(q / p)))


def _numeric(values: Any, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError(f"{name}: no values to compare")
    return x


def numeric_psi(reference: Any, current: Any, bins: int = 10) -> float:
    """PSI of a numeric feature over the reference's quantile bins (NaN counted in a bin of its own)."""
    ref, cur = _numeric(reference, "reference"), _numeric(current, "current")
    finite = ref[~np.isnan(ref)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if finite.size else np.zeros(0)
    n_bins = len(edges) + 2  # value bins, then the NaN bin

    def codes(x: np.ndarray) -> np.ndarray:
        out = np.searchsorted(edges, x, side="right")
        out[np.isnan(x)] = n_bins - 1
        return out

    return _psi(_shares(codes(ref), n_bins), _shares(codes(cur), n_bins))


def categorical_psi(reference: Any, current: Any, max_categories: int = 50) -> float:
    """PSI of a categorical feature over the reference's `max_categories` most frequent values plus "other"."""
    ref = np.asarray(reference, dtype=object).ravel()
    cur = np.asarray(current, dtype=object).ravel()
    if ref.size == 0 or cur.size == 0:
        raise ValueError("reference and current need at least one value each")
    values, counts = np.unique(ref.astype(str), return_counts=True)
    kept = values[np.argsort(-counts, kind="stable")[:max_categories]]
    index = {v: i for i, v in enumerate(kept)}
    n_bins = len(kept) + 1

    def codes(x: np.ndarray) -> np.ndarray:
        return np.fromiter((index.get(str(v), n_bins - 1) for v in x), dtype=np.int64, count=len(x))

    return _psi(_shares(codes(ref), n_bins), _shares(codes(cur), n_bins))


def ks_test(reference: Any, current: Any) -> tuple:
    """(D, p-value) of the two-sample Kolmogorov-Smirnov test; NaNs are dropped, p from the asymptotic series."""
    a, b = _numeric(reference, "reference"), _numeric(current, "current")
    a, b = np.sort(a[~np.isnan(a)]), np.sort(b[~np.isnan(b)])
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan")
    grid = np.concatenate([a, b])
    d = float(np.max(np.abs(np.searchsorted(a, grid, side="right") / a.size
                            - np.searchsorted(b, grid, side="right") / b.size)))
    n = a.size * b.size / (a.size + b.size)
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    if lam < 1e-3:
        return d, 1.0
    p = 2.0 * sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101))
    return d, float(min(max(p, 0.0), 1.0))


def traffic_features(events: Union[Table, Iterable[Event]], item_metadata: Mapping[str, Sequence]) -> Dict[str, np.ndarray]:
    """The monitored features of a batch of events (a canonical events table, e.g. training data, or live Events).

    price (shown, else list price), position, hour of day (UTC), the item's department (first category level) and
    brand, event type, request kind (search / recommend) and the number of query words.
    """
    table = events if isinstance(events, Table) else events_to_table(events)
    items = [item_metadata.get(str(i)) for i in table["item_id"]]
    list_price = np.array([np.nan if m is None or m[2] is None else float(m[2]) for m in items], dtype=np.float64)
    shown = table["price"].astype(np.float64)
    queries = table["query"]
    return {
        "price": np.where(np.isnan(shown), list_price, shown),
        "position": np.where(table["position"] >= 0, table["position"], np.nan).astype(np.float64),
        "hour": ((table["timestamp"] // 3600) % 24).astype(np.float64),
        "department": np.array([(category_levels(m[0]) or [MISSING])[0] if m else MISSING for m in items], dtype=object),
        "brand": np.array([m[1] or MISSING if m else MISSING for m in items], dtype=object),
        "event_type": table["event_type"].astype(object),
        "request_kind": np.where(np.array([bool(q) for q in queries], dtype=bool), "search", "recommend").astype(object),
        "query_words": np.array([len(str(q).split()) for q in queries], dtype=np.float64),
    }


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift: PSI always; the KS statistic and p-value for numeric features (NaN otherwise)."""

    kind: str
    psi: float
    ks: float = float("nan")
    ks_p_value: float = float("nan")


@dataclasses.dataclass(frozen=True)
class CalibrationDrift:
    """Predicted vs observed click rate of a model on reference and recent traffic."""

    ece_reference: float
    ece_current: float
    expected_ctr: float  # mean prediction on recent traffic
    observed_ctr: float  # click rate on recent traffic
    buckets: List[Dict[str, float]]  # per reference-score bucket: bounds, count, expected and observed rate

    @property
    def observed_over_expected(self) -> float:
        return self.observed_ctr / self.expected_ctr if self.expected_ctr > 0 else float("nan")


def calibration_drift(reference_scores: Any, reference_labels: Any, current_scores: Any, current_labels: Any,
                      bins: int = 10) -> CalibrationDrift:
    """Each window's ECE, plus recent traffic's expected vs observed rate in buckets of the reference scores."""
    ref_p, cur_p = _numeric(reference_scores, "reference_scores"), _numeric(current_scores, "current_scores")
    ref_y, cur_y = _numeric(reference_labels, "reference_labels"), _numeric(current_labels, "current_labels")
    edges = np.unique(np.quantile(ref_p, np.linspace(0, 1, bins + 1)[1:-1]))
    codes = np.searchsorted(edges, cur_p, side="right")
    bounds = np.concatenate([[0.0], edges, [1.0]])
    buckets = []
    for b in range(len(edges) + 1):
        mask = codes == b
        n = int(mask.sum())
        buckets.append({
            "low": float(bounds[b]), "high": float(bounds[b + 1]), "count": n,
            "expected": float(cur_p[mask].mean()) if n else float("nan"),
            "observed": float(cur_y[mask].mean()) if n else float("nan"),
        })
    return CalibrationDrift(
        ece_reference=expected_calibration_error(ref_y, ref_p, bins),
        ece_current=expected_calibration_error(cur_y, cur_p, bins),
        expected_ctr=float(cur_p.mean()),
        observed_ctr=float(cur_y.mean()),
        buckets=buckets,
    )


@dataclasses.dataclass
class DriftReport:
    """Drift of every monitored feature and, when scores were given, of the model's calibration."""

    features: Dict[str, FeatureDrift]
    calibration: Optional[CalibrationDrift] = None
    psi_alert: float = 0.2

    @property
    def drifted(self) -> List[str]:
        """Features whose PSI is above the alert level, worst first."""
        bad = [(f.psi, name) for name, f in self.features.items() if f.psi > self.psi_alert]
        return [name for _, name in sorted(bad, reverse=True)]

    def as_metrics(self) -> Dict[str, float]:
        """A flat dict: psi/<feature>, ks/<feature>, calibration/<name>, drifted_features."""
        out: Dict[str, float] = {}
        for name, f in self.features.items():
            out[f"psi/{name}"] = f.psi
            if f.kind == "numeric":
                out[f"ks/{name}"] = f.ks
                out[f"ks_p_value/{name}"] = f.ks_p_value
        if self.calibration is not None:
            c = self.calibration
            out.update({"calibration/ece_reference": c.ece_reference, "calibration/ece_current": c.ece_current,
                        "calibration/expected_ctr": c.expected_ctr, "calibration/observed_ctr": c.observed_ctr,
                        "calibration/observed_over_expected": c.observed_over_expected})
        out["drifted_features"] = float(len(self.drifted))
        return out


def drift_report(reference: Mapping[str, Any], current: Mapping[str, Any], config: Optional[DriftConfig] = None,
                 calibration: Optional[CalibrationDrift] = None) -> DriftReport:
    """PSI (and KS for numbers) of every feature the two column dicts share; a feature is numeric when the
    reference column is a float/int array."""
    config = config or DriftConfig()
    missing = sorted(set(reference) ^ set(current))
    if missing:
        raise ValueError(f"reference and current traffic must have the same features; only one has {missing}")
    features = {}
    for name in reference:
        ref, cur = np.asarray(reference[name]), np.asarray(current[name])
        if ref.dtype.kind in "fiu":
            d, p = ks_test(ref, cur)
            features[name] = FeatureDrift("numeric", numeric_psi(ref, cur, config.bins), d, p)
        else:
            features[name] = FeatureDrift("categorical", categorical_psi(ref, cur, config.max_categories))
    return DriftReport(features, calibration, config.psi_alert)


class DriftGauges:
    """The drift metrics as prometheus-client gauges on the caller's registry (e.g. the server's)."""

    def __init__(self, registry):
        from prometheus_client import Gauge

        self.psi = Gauge("tfrec_online_feature_psi", "population stability index vs the training data", ["feature"],
                         registry=registry)
        self.ks = Gauge("tfrec_online_feature_ks", "Kolmogorov-Smirnov statistic vs the training data", ["feature"],
                        registry=registry)
        self.calibration = Gauge("tfrec_online_calibration", "predicted vs observed click rate", ["metric"],
                                 registry=registry)
        self.drifted = Gauge("tfrec_online_drifted_features", "features whose PSI is above the alert level",
                             registry=registry)

    def update(self, report: DriftReport) -> None:
        for name, f in report.features.items():
            self.psi.labels(name).set(f.psi)
            if f.kind == "numeric":
                self.ks.labels(name).set(f.ks)
        if report.calibration is not None:
            for key, value in report.as_metrics().items():
                if key.startswith("calibration/"):
                    self.calibration.labels(key.split("/", 1)[1]).set(value)
        self.drifted.set(len(report.drifted))


class DriftMonitor:
    """Recent traffic against the training data: features of the reference computed once, a report per `check`,
    published to prometheus gauges when a registry is given."""

    def __init__(self, reference_events: Table, item_metadata: Mapping[str, Sequence],
                 config: Optional[DriftConfig] = None, registry=None):
        self.item_metadata = item_metadata
        self.config = config or DriftConfig()
        self.reference = traffic_features(reference_events, item_metadata)
        self.gauges = DriftGauges(registry) if registry is not None else None

    def check(self, recent: Union[Table, Iterable[Event]],
              calibration: Optional[CalibrationDrift] = None) -> DriftReport:
        """The drift report of `recent` (a table, live events, or `EventLog.read(...)` results)."""
        if not isinstance(recent, Table):
            recent = [getattr(e, "event", e) for e in recent]  # LoggedEvent -> Event
            if not recent:
                raise ValueError("no recent events to compare with the training data")
        report = drift_report(self.reference, traffic_features(recent, self.item_metadata), self.config, calibration)
        if self.gauges is not None:
            self.gauges.update(report)
        return report
