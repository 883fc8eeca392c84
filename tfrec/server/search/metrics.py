"""Prometheus metrics of the search service, served over HTTP when `server.metrics_port` is set:
- `tfrec_search_requests_total{method,code}`: Search / Recommend / LogEvents calls by gRPC status;
- `tfrec_search_latency_seconds{method}`: histogram of handling time;
- `tfrec_search_degraded_total{component}`: answers that degraded (intent, ranker, calibration, user_state, ...);
- `tfrec_search_events_total{event_type,outcome}`: LogEvents events accepted or rejected;
- the A/B metrics of `tfrec.online.ab_metrics.ABMetrics` (requests, impressions, clicks, purchases, CTR,
  conversion per experiment, arm, model and version) on the same registry.
"""

from __future__ import annotations

from typing import Iterable, Optional

from prometheus_client import CollectorRegistry, Counter, Histogram

from tfrec.online.ab_metrics import ABMetrics
from tfrec.server.metrics import SECONDS_BUCKETS, MetricsEndpoint


class SearchMetrics(MetricsEndpoint):
    """The service's counters, histograms and A/B metrics on one registry (module docstring)."""

    def __init__(self, registry: Optional[CollectorRegistry] = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter("tfrec_search_requests", "search service calls by gRPC status", ["method", "code"],
                                registry=r)
        self.latency = Histogram("tfrec_search_latency_seconds", "search service handling time", ["method"],
                                 buckets=SECONDS_BUCKETS, registry=r)
        self.degraded = Counter("tfrec_search_degraded", "answers given without a component", ["component"],
                                registry=r)
        self.events = Counter("tfrec_search_events", "logged events by outcome", ["event_type", "outcome"],
                              registry=r)
        self.ab = ABMetrics(r)

    def request(self, method: str, code: str, seconds: float, degraded: Iterable[str] = ()) -> None:
        """Records one handled call and the components its answer did without."""
        self.requests.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)
        for component in degraded:
            self.degraded.labels(component).inc()

    def event(self, event_type: str, accepted: bool) -> None:
        self.events.labels(event_type, "accepted" if accepted else "rejected").inc()
