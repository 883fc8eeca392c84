"""The live loop inside the search service over real gRPC on 127.0.0.1: LogEvents → SQLite event log → user-state
store → the next Search / Recommend of that user (and only that user); rejected events change nothing; the state comes
back from the event log after a restart; A/B arms are stable per user, send their version label with the ranker call
to the real model server, apply their pipeline settings, and are recorded on responses, logged events and the
Prometheus metrics scraped over HTTP."""

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tfrec.config import ConfigError
from tfrec.online.experiments import assign, load_experiments
from tfrec.server.search.arms import load_arm_router

from search_models import REPO, RunningSearch, search_config

BOOST = 20.0  # a large boost makes the click's effect certain on the tiny, barely trained models


def online_overrides(log_path, **extra):
    return {"online__enabled": True, "online__config": str(REPO / "configs" / "online.yaml"),
            "online__overrides": {"event_log": {"path": str(log_path)}},
            "personalisation__affinity_boost": BOOST, **extra}


def click(user, item, request_id="", arm="", **fields):
    return {"event_type": "click", "user_id": user, "item_id": item, "timestamp": time.time(),
            "request_id": request_id, "position": 0, "arm": arm, **fields}


def ids(response):
    return [item.item_id for item in response.items]


def scrape(port):
    """{(sample name, frozenset(labels)): value} from the service's metrics port."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def online(search_models, model_server, tmp_path_factory):
    running = RunningSearch(search_config(search_models.shop, model_server,
                                          **online_overrides(tmp_path_factory.mktemp("online") / "events.sqlite"),
                                          online__drift_reference=str(search_models.shop), online__drift_every=1))
    yield running
    running.stop()


def test_a_click_changes_the_next_recommendation_of_that_user_only(online):
    shopper, other = "live-shopper-1", "live-shopper-2"
    before = online.client.recommend(shopper, k=10, mmr_lambda=1.0)
    other_before = ids(online.client.recommend(other, k=10, mmr_lambda=1.0))
    clicked = before.items[-1]  # the 10th: its category and brand are not what ranks first yet
    ack = online.client.log_events([click(shopper, clicked.item_id, before.request_id)])
    assert ack.accepted == 1 and ack.results[0].accepted, ack

    after = online.client.recommend(shopper, k=10, mmr_lambda=1.0)
    top = after.items[0]
    assert clicked.item_id not in ids(after)  # now a recent item: Recommend leaves it out
    assert top.category == clicked.category or top.brand == clicked.brand, (top, clicked)
    assert any("a category you shop" in r or "a brand you like" in r for r in top.explanation.reasons), top
    assert ids(online.client.recommend(other, k=10, mmr_lambda=1.0)) == other_before
    state = online.server.live.store.get(shopper)
    assert state.recent_items == [clicked.item_id] and state.category_affinity.get(clicked.category, 0) > 0
    assert state.price_band is not None and state.price_band[0] <= clicked.price <= state.price_band[1]


def test_logged_events_feed_the_drift_gauges(online):
    for n in range(3):
        item = online.client.recommend(f"drifting-{n}", k=3).items[0]
        online.client.log_events([click(f"drifting-{n}", item.item_id)])
    online.server.live.drift.wait(60)
    report = online.server.live.drift.report
    assert report is not None and "event_type" in report.drifted  # live clicks only vs mostly impressions in training
    registry = online.server.metrics.registry
    assert registry.get_sample_value("tfrec_online_drifted_features") == len(report.drifted) >= 1
    assert registry.get_sample_value("tfrec_online_feature_psi", {"feature": "event_type"}) > 0.2


def test_rejected_events_are_reported_with_their_reason_and_change_nothing(online):
    shopper = "live-shopper-3"
    before = ids(online.client.recommend(shopper, k=10, mmr_lambda=1.0))
    item = before[-1]
    last = online.server.live.event_log.last_offset()
    response = online.client.log_events([
        {**click(shopper, item), "event_type": "view"},
        click(shopper, item, timestamp=time.time() + 3600),
        click("", item)])
    assert [r.accepted for r in response.results] == [False, False, False] and response.rejected == 3
    reasons = [r.reason for r in response.results]
    assert "event_type" in reasons[0] and "view" in reasons[0], reasons
    assert "timestamp" in reasons[1] and "future" in reasons[1], reasons
    assert "user_id" in reasons[2], reasons
    assert online.server.live.event_log.last_offset() == last
    assert online.server.live.store.get(shopper).is_empty
    assert ids(online.client.recommend(shopper, k=10, mmr_lambda=1.0)) == before


def test_user_state_is_restored_from_the_event_log_after_a_restart(search_models, model_server, tmp_path):
    config = search_config(search_models.shop, model_server, **online_overrides(tmp_path / "events.sqlite"))
    first = RunningSearch(config)
    try:
        shopper = "returning-shopper"
        item = first.client.recommend(shopper, k=10, mmr_lambda=1.0).items[-1].item_id
        assert first.client.log_events([click(shopper, item)]).accepted == 1
        served = ids(first.client.recommend(shopper, k=10, mmr_lambda=1.0))
    finally:
        first.stop()
    second = RunningSearch(config)
    try:
        assert second.server.live.restored_offset == 1
        assert second.server.live.store.get(shopper).recent_items == [item]
        assert ids(second.client.recommend(shopper, k=10, mmr_lambda=1.0)) == served
    finally:
        second.stop()


# The session's model server has one ranker version and no labels: the stable arm is served by the newest version
# (v1), the canary arm's label reaches the model server, which answers NOT_FOUND naming it. (A real second version
# on a second model server doubled this test's cost to ~21 s: loading and first-calling a DCN SavedModel twice.)
EXPERIMENTS = """
version_labels: [stable, canary]
experiments:
  - name: ranker_ab
    arms:
      - {name: stable, weight: 0.5, model: ranker, pipeline: {explain: {max_reasons: 2}}}
      - {name: canary, weight: 0.5, model: ranker, version_label: canary, pipeline: {mmr: {relevance_weight: 1.0}}}
"""


def test_ab_arms_are_stable_route_the_ranker_label_and_are_recorded(search_models, model_server, tmp_path):
    experiments = tmp_path / "experiments.yaml"
    experiments.write_text(EXPERIMENTS)
    experiment = load_experiments(experiments).get("ranker_ab")
    users = {}
    for n in range(100):  # one user of each arm
        users.setdefault(assign(experiment, f"ab-user-{n}"), f"ab-user-{n}")
    running = RunningSearch(search_config(
        search_models.shop, model_server, **online_overrides(tmp_path / "events.sqlite"),
        ab__experiments=str(experiments), server__metrics_port=0))
    try:
        responses = {arm: [running.client.recommend(user, k=5) for _ in range(3)] for arm, user in users.items()}
        for arm in ("stable", "canary"):
            assert {r.experiment_arm for r in responses[arm]} == {f"ranker_ab:{arm}"}
        for response in responses["stable"]:
            assert response.model_versions["ranker"] == 1 and not response.degraded
            assert max(len(i.explanation.reasons) for i in response.items) <= 2  # the arm's setting
        for response in responses["canary"]:  # the label went with the ranker call, and only with it
            assert [(d.component, d.status) for d in response.degradations] == [("ranker", "NOT_FOUND")]
            assert "'canary'" in response.degradations[0].message and "ranker" not in response.model_versions
            assert [i.score for i in response.items] == sorted((i.score for i in response.items), reverse=True)
        assert running.client.search("shoes", k=3).experiment_arm == ""  # anonymous: in no arm

        canary = responses["canary"][0]
        item = canary.items[0].item_id
        logged = running.client.log_events([click(users["canary"], item, canary.request_id),
                                            {**click(users["canary"], item, canary.request_id),
                                             "event_type": "impression"},
                                            click(users["stable"], item),  # no request id: the user's arm
                                            click(users["stable"], item, arm="manual:arm")])  # kept as sent
        assert logged.accepted == 4, logged
        stored = [e.event.arm for batch in running.server.live.event_log.read_batches(0, None, 100) for e in batch]
        assert stored == ["ranker_ab:canary", "ranker_ab:canary", "ranker_ab:stable", "manual:arm"]

        metrics = scrape(running.server.metrics_port)
        arm_labels = lambda arm, version: frozenset({"experiment": "ranker_ab", "arm": arm, "model": "ranker",  # noqa
                                                     "version": version}.items())
        assert metrics[("tfrec_ab_requests_total", arm_labels("stable", "1"))] == 3
        assert metrics[("tfrec_ab_requests_total", arm_labels("canary", ""))] == 3
        assert metrics[("tfrec_ab_clicks_total", arm_labels("canary", ""))] == 1
        assert metrics[("tfrec_ab_clicks_total", arm_labels("stable", ""))] == 1
        assert metrics[("tfrec_ab_ctr", arm_labels("canary", ""))] == 1.0  # 1 click / 1 impression
        ok = frozenset({"method": "Recommend", "code": "OK"}.items())
        assert metrics[("tfrec_search_requests_total", ok)] == 6
        assert metrics[("tfrec_search_latency_seconds_count", frozenset({"method": "Recommend"}.items()))] == 6
        assert metrics[("tfrec_search_degraded_total", frozenset({"component": "ranker"}.items()))] == 3
        assert metrics[("tfrec_search_requests_total", frozenset({"method": "LogEvents", "code": "OK"}.items()))] == 1
    finally:
        running.stop()


def test_metrics_count_errors_and_degraded_answers(start_search):
    running = start_search(server__metrics_port=0, models__intent__name="no_such_intent")
    for _ in range(2):
        assert running.client.search("shoes", k=3).degraded
    with pytest.raises(Exception):
        running.client.search("shoes", k=0)
    metrics = scrape(running.server.metrics_port)
    assert metrics[("tfrec_search_requests_total", frozenset({"method": "Search", "code": "OK"}.items()))] == 2
    bad = frozenset({"method": "Search", "code": "INVALID_ARGUMENT"}.items())
    assert metrics[("tfrec_search_requests_total", bad)] == 1
    assert metrics[("tfrec_search_degraded_total", frozenset({"component": "intent"}.items()))] == 2


@pytest.mark.parametrize("pipeline, words", [
    ("{fusion: rrf}", "experiment 'e', arm 'b': unknown pipeline setting 'fusion'"),
    ("{mmr: {relevance_weight: 2.0}}", "experiment 'e', arm 'b': must be in [0, 1]"),
])
def test_arm_pipeline_settings_are_checked_at_start(tmp_path, search_models, pipeline, words):
    path = tmp_path / "experiments.yaml"
    path.write_text("experiments:\n  - name: e\n    arms:\n      - {name: a, weight: 0.5, version_label: stable}\n"
                    f"      - {{name: b, weight: 0.5, pipeline: {pipeline}}}\n")
    config = search_config(search_models.shop, 1, ab__experiments=str(path))
    with pytest.raises(ConfigError, match="experiments\\[0\\]\\.arms\\[1\\]\\.pipeline") as err:
        load_arm_router(config, {"retrieval": "retrieval", "ranker": "ranker"})
    assert words in str(err.value)



def test_the_repository_experiments_are_valid_for_the_search_service(search_models):
    experiments = str(REPO / "configs" / "experiments.yaml")
    callers = {"retrieval": "retrieval", "ranker": "ranker", "intent": "intent"}
    with pytest.raises(ConfigError, match="declares 2 experiments .*name the one this service runs"):
        load_arm_router(search_config(search_models.shop, 1, ab__experiments=experiments), callers)
    for name in ("ranker_canary", "diversity"):
        router = load_arm_router(search_config(search_models.shop, 1, ab__experiments=experiments,
                                               ab__experiment=name), callers)
        assert router.experiment.name == name and len(router.plans) == 2
    plans = router.plans  # diversity: both arms keep the models' default versions, change MMR and boosts
    assert plans["more_diverse"].config.mmr.relevance_weight == 0.5 and not plans["more_diverse"].labels
    assert plans["more_diverse"].config.personalisation.affinity_boost == 0.4
    assert plans["control"].config.mmr.relevance_weight == 0.7
    with pytest.raises(ConfigError, match="ab.experiment: no experiment 'nope'"):
        load_arm_router(search_config(search_models.shop, 1, ab__experiments=experiments, ab__experiment="nope"),
                        callers)
