"""Prometheus metrics of one server (own registry, so several servers in one process do not collide), served as
text on an HTTP port (any path, e.g. TF Serving's /monitoring/prometheus/metrics).

- `tfrec_serving_requests_total{model,version,api,code}`: requests by outcome (code OK or the gRPC status);
- `tfrec_serving_request_errors_total{model,version,api,code}`: the failed ones;
- `tfrec_serving_request_latency_seconds{model,version,api}`: histogram of handling time;
- `tfrec_serving_batch_size{model,version,signature}`: histogram of rows per executed batch (after padding);
- `tfrec_serving_batch_requests{model,version,signature}`: histogram of requests merged per batch;
- `tfrec_serving_model_loads_total{model,version,outcome}` and `tfrec_serving_model_load_seconds{model}`.
An unresolved request has version "" (and model "" when the model is not configured).
"""

from __future__ import annotations

from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class MetricsEndpoint:
    """A registry's HTTP endpoint (Prometheus text), shared by the model server and the search service."""

    registry: CollectorRegistry
    _http = None

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Starts the HTTP endpoint (a daemon thread) and returns its port."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return server.server_port

    def value(self, name: str, **labels) -> float:
        """A sample's current value (0 when it was never recorded), e.g. value('tfrec_serving_batch_requests_sum',
        model='m', version='1', signature='serving_default')."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def close(self) -> None:
        """Stops the HTTP endpoint."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class ServerMetrics(MetricsEndpoint):
    """The server's counters and histograms, and the HTTP endpoint that exposes them."""

    def __init__(self, registry: Optional[CollectorRegistry] = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        labels = ["model", "version", "api"]
        self.requests = Counter("tfrec_serving_requests", "gRPC requests by outcome", labels + ["code"], registry=r)
        self.errors = Counter("tfrec_serving_request_errors", "failed gRPC requests", labels + ["code"], registry=r)
        self.latency = Histogram("tfrec_serving_request_latency_seconds", "request handling time", labels,
                                 buckets=SECONDS_BUCKETS, registry=r)
        batch = ["model", "version", "signature"]
        self.batch_size = Histogram("tfrec_serving_batch_size", "rows per executed batch (after padding)", batch,
                                    buckets=_SIZES, registry=r)
        self.batch_requests = Histogram("tfrec_serving_batch_requests", "requests merged per executed batch", batch,
                                        buckets=_SIZES, registry=r)
        self.loads = Counter("tfrec_serving_model_loads", "model version loads", ["model", "version", "outcome"],
                             registry=r)
        self.load_seconds = Histogram("tfrec_serving_model_load_seconds", "time to load and warm up a version",
                                      ["model"], buckets=SECONDS_BUCKETS, registry=r)
        self._http = None

    def request(self, model: str, version: str, api: str, code: str, seconds: float) -> None:
        """Records one handled request."""
        self.requests.labels(model, version, api, code).inc()
        if code != "OK":
            self.errors.labels(model, version, api, code).inc()
        self.latency.labels(model, version, api).observe(seconds)

    def batch(self, servable, signature: str, padded: int, requests: int, rows: int) -> None:
        """Records one executed batch (a BatchScheduler callback)."""
        version = str(servable.version)
        self.batch_size.labels(servable.name, version, signature).observe(padded)
        self.batch_requests.labels(servable.name, version, signature).observe(requests)

    def model_load(self, name: str, version: int, ok: bool, seconds: float) -> None:
        """Records one version load (a ModelManager callback)."""
        self.loads.labels(name, str(version), "ok" if ok else "error").inc()
        self.load_seconds.labels(name).observe(seconds)
