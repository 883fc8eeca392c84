"""Prometheus metrics of running experiments, per experiment, arm, model and model version, for dashboards and alerts.

Counters (labels experiment, arm, model, version):
- `tfrec_ab_requests_total`: responses served (one per search / recommendation request);
- `tfrec_ab_impressions_total`, `tfrec_ab_clicks_total`, `tfrec_ab_add_to_carts_total`, `tfrec_ab_purchases_total`;
- `tfrec_ab_revenue_total`: shown prices of purchases.
Gauges (same labels), recomputed on every update:
- `tfrec_ab_ctr` = clicks / impressions;
- `tfrec_ab_conversion_rate` = purchases / requests (equals the report's share of converting requests when a
  request leads to at most one purchase).
These are running totals for monitoring; significance and intervals come from `tfrec ab report` over the event log.
The registry is passed in (the server's own, or a fresh one in tests), so several services never collide.
"""

from __future__ import annotations

import threading
from typing import Dict, Optional, Tuple

from prometheus_client import CollectorRegistry, Counter, Gauge

LABELS = ("experiment", "arm", "model", "version")
_EVENT_COUNTERS = {"impression": "impressions", "click": "clicks", "add_to_cart": "add_to_carts",
                   "purchase": "purchases"}

__all__ = ["ABMetrics", "LABELS", "split_arm_tag"]


def split_arm_tag(recorded: str) -> Tuple[str, str]:
    """('experiment', 'arm') from a recorded '<experiment>:<arm>' (('', arm) for a bare arm name)."""
    experiment, sep, arm = str(recorded).rpartition(":")
    return (experiment, arm) if sep else ("", str(recorded))


class ABMetrics:
    """Counters and gauges of experiment traffic in `registry` (module docstring)."""

    def __init__(self, registry: Optional[CollectorRegistry] = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r, labels = self.registry, list(LABELS)
        self.requests = Counter("tfrec_ab_requests", "responses served per arm", labels, registry=r)
        self.counters: Dict[str, Counter] = {
            field: Counter(f"tfrec_ab_{field}", f"{field.replace('_', ' ')} per arm", labels, registry=r)
            for field in _EVENT_COUNTERS.values()
        }
        self.revenue = Counter("tfrec_ab_revenue", "shown prices of purchases per arm", labels, registry=r)
        self.ctr = Gauge("tfrec_ab_ctr", "clicks / impressions per arm", labels, registry=r)
        self.conversion = Gauge("tfrec_ab_conversion_rate", "purchases / requests per arm", labels, registry=r)
        self._totals: Dict[tuple, Dict[str, float]] = {}
        self._lock = threading.Lock()

    def _add(self, key: tuple, field: str, amount: float) -> None:
        with self._lock:
            totals = self._totals.setdefault(key, {"requests": 0.0, "impressions": 0.0, "clicks": 0.0,
                                                   "purchases": 0.0})
            if field in totals:
                totals[field] += amount
            if totals["impressions"] > 0:
                self.ctr.labels(*key).set(totals["clicks"] / totals["impressions"])
            if totals["requests"] > 0:
                self.conversion.labels(*key).set(totals["purchases"] / totals["requests"])

    def observe_request(self, arm: str, model: str = "", version: str = "", impressions: int = 0) -> None:
        """A served response: one request, and `impressions` items shown (0 when impressions arrive as events).
        `arm` is the recorded '<experiment>:<arm>' (or a bare arm name)."""
        key = (*split_arm_tag(arm), str(model), str(version))
        self.requests.labels(*key).inc()
        self._add(key, "requests", 1)
        if impressions:
            self.counters["impressions"].labels(*key).inc(impressions)
            self._add(key, "impressions", impressions)

    def observe_event(self, event_type: str, arm: str, model: str = "", version: str = "",
                      price: Optional[float] = None, count: int = 1) -> None:
        """`count` events of `event_type` (impression, click, add_to_cart, purchase) of an arm; a purchase adds its
        shown `price` to the revenue. ValueError for another event type."""
        field = _EVENT_COUNTERS.get(event_type)
        if field is None:
            raise ValueError(f"event_type: expected one of {', '.join(_EVENT_COUNTERS)}, got {event_type!r}")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        key = (*split_arm_tag(arm), str(model), str(version))
        self.counters[field].labels(*key).inc(count)
        if field == "purchases" and price is not None:
            self.revenue.labels(*key).inc(float(price) * count)
        self._add(key, field, count)

    def observe(self, event, model: str = "", version: str = "") -> None:
        """A `tfrec.online.events.Event` (its arm, type and price)."""
        self.observe_event(event.event_type, event.arm, model, version, event.price)

    def value(self, name: str, **labels) -> float:
        """A sample's current value (0 when never recorded), e.g. value('tfrec_ab_ctr', experiment='e', arm='B',
        model='ranker', version='2')."""
        full = {label: str(labels.get(label, "")) for label in LABELS}
        return self.registry.get_sample_value(name, full) or 0.0
