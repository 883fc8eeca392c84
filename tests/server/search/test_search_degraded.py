"""The search service when models fail: a ranker that is missing, unreachable or too slow leaves retrieval order
and says so; a missing intent model leaves search on the text's own words; a missing retrieval model is UNAVAILABLE;
a failed model is skipped for `retry_after_s`; calibration of another ranker version is flagged; the Platt calibration
fitted through the model server (`tfrec search-calibrate`) is what the responses' probabilities use."""

import contextlib
import io
import json
import socket

import grpc
import numpy as np
import pytest

from tfrec.cli.main import main

QUERY = "shoes under 60"


def _retrieval_order(response):
    ranks = [item.retrieval_rank for item in response.items]
    return ranks == sorted(ranks)


def _assert_ranker_degraded(response, status):
    assert response.degraded and [d.component for d in response.degradations] == ["ranker"], response.degradations
    assert response.degradations[0].status == status
    assert "retrieval order" in response.degradations[0].message
    assert response.items and _retrieval_order(response)
    assert not any(item.has_probability for item in response.items)
    assert all("ranker unavailable" in item.explanation.reasons[0] for item in response.items)
    assert "ranker" not in response.model_versions and "rank" in response.timings_ms


def test_missing_ranker_keeps_retrieval_order(start_search):
    running = start_search(models__ranker__name="no_such_ranker", mmr__relevance_weight=1.0)
    _assert_ranker_degraded(running.client.search(QUERY, k=6), "NOT_FOUND")
    _assert_ranker_degraded(running.client.recommend("U000001", k=6), "NOT_FOUND")


def test_unreachable_ranker_server_degrades(start_search):
    with socket.socket() as sock:  # a loopback port nothing listens on: the ranker's server is down
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    running = start_search(models__ranker__address=f"127.0.0.1:{port}", mmr__relevance_weight=1.0)
    _assert_ranker_degraded(running.client.search(QUERY, k=6), "UNAVAILABLE")


def test_slow_ranker_times_out_into_retrieval_order(start_search):
    running = start_search(models__ranker__timeout_ms=0.01, mmr__relevance_weight=1.0)
    _assert_ranker_degraded(running.client.search(QUERY, k=6), "DEADLINE_EXCEEDED")


def test_a_failed_model_is_not_retried_until_retry_after(start_search):
    retrying = start_search(models__ranker__name="no_such_ranker", retry_after_s=0.0)
    assert all("not retried" not in retrying.client.search(QUERY, k=3).degradations[0].message for _ in range(2))
    pausing = start_search(models__ranker__name="no_such_ranker", retry_after_s=60.0)
    for _ in range(2):  # the start-up warm-up failed: no request waits for the ranker within the next minute
        degradation = pausing.client.search(QUERY, k=3).degradations[0]
        assert degradation.status == "NOT_FOUND" and "(not retried for " in degradation.message


def test_missing_intent_model_searches_on_text_tokens(start_search, search_models):
    from tfrec.data.dataset_io import load_dataset

    dataset, _ = load_dataset(search_models.shop)
    brand = str(dataset.catalog["brand"][0])
    running = start_search(models__intent__name="no_such_intent")
    response = running.client.search(f"{brand.lower()} under 500", k=5)
    assert [d.component for d in response.degradations] == ["intent"], response.degradations
    assert "text tokens" in response.degradations[0].message and response.degradations[0].status == "NOT_FOUND"
    parsed = response.parsed_query
    assert not parsed.understood and parsed.slots["brand"] == brand and parsed.slots["price_max"] == "500"
    assert "intent" not in response.model_versions and response.items
    if not parsed.relaxed_filters:
        assert all(item.brand == brand and item.price <= 500 for item in response.items)
    off = start_search(models__intent=None).client.search(f"{brand} shoes", k=3)  # no intent model configured
    assert not off.degraded and off.parsed_query.slots["brand"] == brand


def test_missing_retrieval_model_is_unavailable(start_search):
    running = start_search(models__retrieval__name="no_such_retrieval")
    for call in (lambda: running.client.search(QUERY), lambda: running.client.recommend("U000001")):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "retrieval model 'no_such_retrieval' unavailable" in err.value.details()


def test_platt_calibration_through_the_model_server(search_models, model_server, start_search, tmp_path):
    path = tmp_path / "calibration.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["search-calibrate", "--data", str(search_models.shop), "--out", str(path),
                     "--model-server", f"127.0.0.1:{model_server}"]) == 0
    saved = json.loads(path.read_text())
    assert saved["method"] == "platt" and saved["model"] == "ranker" and saved["version"] == 1
    report = saved["report"]
    assert report["fit_rows"] > 1000 and report["holdout_rows"] > 300
    # The position-free ranker is no probability of a top-slot click; Platt scaling on older impressions makes it one.
    assert report["holdout_log_loss_calibrated"] < report["holdout_log_loss_ranker"], report
    response = start_search(calibration=str(path)).client.search(QUERY, k=5)
    assert not response.degraded and "platt" in response.calibration
    for item in response.items:
        logit = np.log(item.ranker_probability / (1 - item.ranker_probability))
        expected = 1 / (1 + np.exp(-(saved["a"] * logit + saved["b"])))
        assert item.probability == pytest.approx(expected, rel=1e-4)
    stale = dict(saved, version=7)
    path.write_text(json.dumps(stale))
    flagged = start_search(calibration=str(path)).client.search(QUERY, k=5)
    assert [d.component for d in flagged.degradations] == ["calibration"]
    assert "fitted on ranker v7" in flagged.degradations[0].message and flagged.items[0].has_probability
