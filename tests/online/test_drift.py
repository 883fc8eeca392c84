"""Drift metrics: PSI and KS checked by hand and against scipy, small between two halves of the same traffic and
large on shifted traffic; calibration drift on a model whose clicks halve; prometheus gauges."""

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.online.config import DriftConfig
from tfrec.online.drift import (
    PSI_FLOOR, DriftGauges, DriftMonitor, calibration_drift, categorical_psi, drift_report, ks_test, numeric_psi, traffic_features,
)
from tfrec.online.event_log import EventLog
from tfrec.online.events import events_from_table
from tfrec.online.user_state import item_metadata_from_catalog


@pytest.fixture(scope="module")
def traffic():
    """Reference = the first half of a shop's week; recent = the second half; shifted = a shop whose requests are
    mostly searches, shown at twice the prices."""
    base = generate(SyntheticConfig.preset("tiny", seed=5, n_sessions=2000))
    shifted = generate(SyntheticConfig.preset("tiny", seed=5, n_sessions=2000, search_fraction=0.9))
    items = item_metadata_from_catalog(base.dataset.catalog)
    events = base.dataset.events
    middle = np.median(events["timestamp"])
    first, second = events.take(events["timestamp"] < middle), events.take(events["timestamp"] >= middle)
    moved = shifted.dataset.events
    moved.columns["price"] = moved["price"] * 2.0
    return items, traffic_features(first, items), traffic_features(second, items), traffic_features(moved, items)


def test_numeric_psi_by_hand():
    ref = np.arange(100, dtype=float)
    cur = np.full(50, 90.0)  # everything in the top quartile
    p, q = 0.25, PSI_FLOOR
    expected = 3 * (q - p) * math.log(q / p) + (1 - p) * math.log(1 / p)
    assert numeric_psi(ref, cur, bins=4) == pytest.approx(expected)
    assert numeric_psi(ref, ref.copy(), bins=4) == pytest.approx(0.0)
    # missing values have a bin of their own: half missing now vs none before
    with_nan = np.concatenate([np.arange(50.0), np.full(50, np.nan)])
    assert numeric_psi(ref, with_nan, bins=2) == pytest.approx(
        (0.5 - 0.5) * 0 + (PSI_FLOOR - 0.5) * math.log(PSI_FLOOR / 0.5) + (0.5 - PSI_FLOOR) * math.log(0.5 / PSI_FLOOR))


def test_categorical_psi_by_hand_and_other_bucket():
    ref = ["a"] * 50 + ["b"] * 50
    cur = ["a"] * 25 + ["b"] * 25 + ["new"] * 50  # an unseen value goes to <other>
    expected = 2 * (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.5 - PSI_FLOOR) * math.log(0.5 / PSI_FLOOR)
    assert categorical_psi(ref, cur) == pytest.approx(expected)
    assert categorical_psi(ref, ["b", "a"] * 10) == pytest.approx(0.0)
    assert categorical_psi(["a"] * 3 + ["b"] * 2 + ["c"], ["c"] * 6, max_categories=2) == pytest.approx(
        categorical_psi(["a"] * 3 + ["b"] * 2 + ["z"], ["y"] * 6, max_categories=2))  # c pools with the rest


def test_ks_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 3000), rng.normal(0.1, 1, 2000)
    d, p = ks_test(a, b)
    ref = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue, rel=1e-3, abs=1e-6)
    assert ks_test(a, a) == (0.0, 1.0)


def test_same_traffic_is_stable_and_shifted_traffic_is_flagged(traffic):
    _, reference, recent, shifted = traffic
    stable = drift_report(reference, recent)
    drifted = drift_report(reference, shifted)
    for name in ("price", "request_kind", "query_words", "position", "department"):
        assert stable.features[name].psi < 0.05, (name, stable.features[name])
    assert stable.drifted == []
    assert drifted.features["price"].psi > 0.3 and drifted.features["request_kind"].psi > 0.5
    assert drifted.features["query_words"].psi > 0.5
    assert {"price", "request_kind", "query_words"} <= set(drifted.drifted)
    assert drifted.features["price"].ks > 5 * stable.features["price"].ks and drifted.features["price"].ks_p_value < 1e-6
    assert drifted.features["position"].psi < 0.05  # the list size did not change
    metrics = drifted.as_metrics()
    assert metrics["psi/price"] == drifted.features["price"].psi and "ks/department" not in metrics
    assert metrics["drifted_features"] == len(drifted.drifted)


def test_features_from_live_events_equal_those_from_the_table(traffic):
    items = traffic[0]
    data = generate(SyntheticConfig.preset("tiny", seed=5, n_sessions=200))
    from_table = traffic_features(data.dataset.events, items)
    from_events = traffic_features(list(events_from_table(data.dataset.events)), items)
    for name, column in from_table.items():
        if column.dtype == object:
            assert list(column) == list(from_events[name]), name
        else:
            np.testing.assert_array_equal(column, from_events[name], err_msg=name)
    assert set(from_table["request_kind"]) == {"search", "recommend"}
    assert from_table["hour"].min() >= 0 and from_table["hour"].max() <= 23


def test_calibration_drift_when_clicks_halve():
    rng = np.random.default_rng(1)
    ref_p, cur_p = rng.beta(1, 12, 20000), rng.beta(1, 12, 20000)
    ref_y = rng.random(20000) < ref_p
    same = calibration_drift(ref_p, ref_y, cur_p, rng.random(20000) < cur_p, bins=10)
    halved = calibration_drift(ref_p, ref_y, cur_p, rng.random(20000) < cur_p / 2, bins=10)
    assert same.ece_reference < 0.01 and same.ece_current < 0.01
    assert abs(same.observed_over_expected - 1) < 0.08
    assert halved.observed_over_expected == pytest.approx(0.5, abs=0.06)
    assert halved.ece_current > 0.025 and halved.ece_current > 4 * same.ece_current
    assert len(halved.buckets) == 10 and sum(b["count"] for b in halved.buckets) == 20000
    top = halved.buckets[-1]  # in the most confident bucket the gap is largest
    assert top["expected"] - top["observed"] > 0.05


def test_drift_gauges_export_the_report(traffic):
    _, reference, recent, shifted = traffic
    rng = np.random.default_rng(2)
    p = rng.beta(1, 12, 5000)
    report = drift_report(reference, shifted, DriftConfig(psi_alert=0.25),
                          calibration=calibration_drift(p, rng.random(5000) < p, p, rng.random(5000) < p / 2))
    registry = CollectorRegistry()
    gauges = DriftGauges(registry)
    gauges.update(report)
    value = registry.get_sample_value
    assert value("tfrec_online_feature_psi", {"feature": "price"}) == report.features["price"].psi
    assert value("tfrec_online_feature_ks", {"feature": "price"}) == report.features["price"].ks
    assert value("tfrec_online_feature_ks", {"feature": "brand"}) is None  # categorical: PSI only
    assert value("tfrec_online_calibration", {"metric": "observed_over_expected"}) == pytest.approx(0.5, abs=0.1)
    assert value("tfrec_online_drifted_features") == len(report.drifted) >= 3
    gauges.update(drift_report(reference, recent))
    assert value("tfrec_online_drifted_features") == 0
    with pytest.raises(ValueError, match=r"only one has \['extra'\]"):
        drift_report(reference, {**recent, "extra": np.zeros(3)})


def test_monitor_reads_recent_traffic_from_the_event_log(tmp_path):
    base = generate(SyntheticConfig.preset("tiny", seed=6, n_sessions=1500))
    searches = generate(SyntheticConfig.preset("tiny", seed=6, n_sessions=600, search_fraction=1.0))
    items = item_metadata_from_catalog(base.dataset.catalog)
    log = EventLog(tmp_path / "events.sqlite", clock=lambda: 2e9)
    log.append(list(events_from_table(base.dataset.events)))
    registry = CollectorRegistry()
    monitor = DriftMonitor(base.dataset.events, items, registry=registry)
    window = 5000
    calm = monitor.check(log.read(since_offset=log.last_offset() - window))
    assert calm.drifted == [] and registry.get_sample_value("tfrec_online_drifted_features") == 0
    log.append(list(events_from_table(searches.dataset.events))[:window])  # then traffic turns into all searches
    report = monitor.check(log.read(since_offset=log.last_offset() - window))
    assert set(report.drifted[:2]) == {"request_kind", "query_words"}  # worst first
    assert registry.get_sample_value("tfrec_online_feature_psi", {"feature": "request_kind"}) > 1.0
    with pytest.raises(ValueError, match="no recent events"):
        monitor.check(log.read(since_offset=log.last_offset()))
