"""The Grafana dashboard in serving/grafana plots only metrics that tfrec really exports."""

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

DASHBOARD = Path(__file__).resolve().parents[2] / "serving" / "grafana" / "tfrec-dashboard.json"


def _exported_names():
    """Every sample name (with _total, _bucket, ... suffixes) that the model server, the search service (with its A/B
    metrics) and the drift gauges register."""
    from tfrec.online.drift import DriftGauges
    from tfrec.server.metrics import ServerMetrics
    from tfrec.server.search.metrics import SearchMetrics

    registry = CollectorRegistry()
    ServerMetrics(registry)
    SearchMetrics(registry)  # includes tfrec.online.ab_metrics.ABMetrics
    DriftGauges(registry)
    names = set()
    for collector in list(registry._collector_to_names):  # noqa: SLF001 - the registry has no public listing
        names.update(registry._collector_to_names[collector])
    return names


def test_dashboard_is_valid_grafana_json_with_prometheus_targets():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"])


def test_every_metric_the_dashboard_plots_is_exported():
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported_names()
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used.update(re.findall(r"\btfrec_[a-z_]+", target["expr"]))
    assert used, "the dashboard plots no tfrec metric"
    missing = sorted(used - exported)
    assert not missing, f"dashboard plots metrics nothing exports: {missing}"


def test_the_search_service_panels_are_there():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    for name in ("tfrec_search_requests_total", "tfrec_search_latency_seconds_bucket", "tfrec_search_degraded_total",
                 "tfrec_ab_requests_total", "tfrec_ab_clicks_total", "tfrec_ab_impressions_total",
                 "tfrec_ab_purchases_total"):
        assert name in exprs, name
