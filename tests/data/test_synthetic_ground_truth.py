"""Synthetic ground truth: true probabilities are calibrated and informative, preferred items match behaviour,
save/load is exact."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from tfrec.data.synthetic import GroundTruth, SyntheticConfig, generate, impression_labels, rank_auc

TINY = SyntheticConfig.preset("tiny", seed=5)


def reference_auc(scores, labels):
    """Rank-sum AUC with ties averaged, written independently of the library."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    rank_of_value = np.cumsum(counts) - (counts - 1) / 2.0  # average 1-based rank of each distinct value
    ranks = rank_of_value[inverse]
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return (ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@pytest.fixture(scope="module")
def data():
    return generate(TINY)


@pytest.fixture(scope="module")
def labels(data):
    return impression_labels(data.dataset.events)


def test_rank_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(float)  # many ties
    labels = rng.random(60) < 0.4
    pos, neg = scores[labels], scores[~labels]
    pairwise = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert rank_auc(scores, labels) == pytest.approx(pairwise)
    assert reference_auc(scores, labels) == pytest.approx(pairwise)
    with pytest.raises(ValueError):
        rank_auc([0.1, 0.2], [True, True])


def test_true_click_probabilities_are_calibrated(data, labels):
    p = data.ground_truth.click_probability(labels.request_ids, labels.item_ids)
    assert np.all((p > 0) & (p < 1))
    assert p.mean() == pytest.approx(TINY.target_ctr, abs=1e-9)  # the intercept is solved for this
    se = np.sqrt(TINY.target_ctr * (1 - TINY.target_ctr) / len(p))
    assert abs(labels.clicked.mean() - p.mean()) < 4 * se
    # calibrated per decile too, not only on average
    edges = np.quantile(p, np.linspace(0, 1, 11))
    bucket = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    for b in (0, 5, 9):
        m = bucket == b
        assert abs(labels.clicked[m].mean() - p[m].mean()) < 4 * np.sqrt(p[m].mean() / m.sum()) + 0.005


def test_best_auc_is_high_and_beats_popularity(data, labels):
    gt = data.ground_truth
    best = gt.best_auc(data.dataset.events)
    p = gt.click_probability(labels.request_ids, labels.item_ids)
    assert best == pytest.approx(reference_auc(p, labels.clicked))
    assert best > 0.70

    # popularity learned on the first half of the log, scored on the second half
    half = len(labels) // 2
    items, inverse = np.unique(labels.item_ids, return_inverse=True)
    clicks = np.bincount(inverse[:half], weights=labels.clicked[:half], minlength=len(items))
    shows = np.bincount(inverse[:half], minlength=len(items))
    popularity = (clicks + 0.1) / (shows + 1.0)
    test = slice(half, None)
    pop_auc = reference_auc(popularity[inverse[test]], labels.clicked[test])
    truth_auc = reference_auc(p[test], labels.clicked[test])
    assert 0.5 < pop_auc < truth_auc - 0.1


def test_click_probability_lookup_positions_and_errors(data, labels):
    gt = data.ground_truth
    req, item = labels.request_ids[:200], labels.item_ids[:200]
    logged = gt.click_probability(req, item)
    np.testing.assert_array_equal(gt.logged_positions(req, item), labels.positions[:200])
    np.testing.assert_array_equal(gt.click_probability(req, item, positions=labels.positions[:200]), logged)
    top, bottom = gt.click_probability(req, item, positions=0), gt.click_probability(req, item, positions=9)
    assert np.all(top > bottom) and np.all(top >= logged) and np.all(logged >= bottom)
    # order of the query does not matter
    np.testing.assert_array_equal(gt.click_probability(req[::-1], item[::-1]), logged[::-1])

    shown = set(labels.item_ids[labels.request_ids == req[0]])
    never_shown = next(i for i in data.dataset.catalog["item_id"] if i not in shown)
    with pytest.raises(KeyError, match="not shown"):
        gt.click_probability([req[0]], [never_shown])
    assert 0 < gt.click_probability([req[0]], [never_shown], positions=[3])[0] < 1
    with pytest.raises(KeyError, match="unknown request_id"):
        gt.click_probability(["R-nope"], [item[0]])
    with pytest.raises(KeyError, match="unknown item_id"):
        gt.click_probability([req[0]], ["I-nope"])


def test_purchase_probability_is_conditional_on_click_and_matches_the_log(data, labels):
    gt = data.ground_truth
    ev = data.dataset.events
    clicked = labels.clicked
    p_cart = gt.add_to_cart_probability(labels.request_ids[clicked], labels.item_ids[clicked])
    p_buy = gt.purchase_probability(labels.request_ids[clicked], labels.item_ids[clicked])
    assert np.all(p_buy <= p_cart) and np.all(p_buy > 0)
    n_clicks = clicked.sum()
    for kind, p in (("add_to_cart", p_cart), ("purchase", p_buy)):
        observed = np.sum(ev["event_type"] == kind) / n_clicks
        assert abs(observed - p.mean()) < 4 * np.sqrt(p.mean() * (1 - p.mean()) / n_clicks), kind


def test_purchase_probability_is_price_sensitive(data):
    """The same request/item pair becomes less likely to be bought when the shopper's price band sits lower."""
    gt = data.ground_truth
    thrifty = dataclasses.replace(gt.model.users, price_tier=gt.model.users.price_tier - 1.0)
    thrifty_gt = GroundTruth(gt.config, dataclasses.replace(gt.model, users=thrifty), gt.request_features,
                             gt.impressions)
    req_ids = gt.request_features.request_ids[:50]
    items = data.dataset.catalog["item_id"][:50]
    assert np.all(thrifty_gt.purchase_probability(req_ids, items) < gt.purchase_probability(req_ids, items))


def test_requests_table_holds_intents_and_matches_the_events(data):
    gt = data.ground_truth
    rq = gt.requests
    assert len(rq) == TINY.n_sessions and len(set(rq["request_id"])) == len(rq)
    ev = data.dataset.events
    imp = ev.take(ev["event_type"] == "impression")
    user_of = dict(zip(rq["request_id"], rq["user_id"]))
    query_of = dict(zip(rq["request_id"], rq["query"]))
    time_of = dict(zip(rq["request_id"], rq["timestamp"]))
    for r, u, q, t in zip(imp["request_id"][::37], imp["user_id"][::37], imp["query"][::37], imp["timestamp"][::37]):
        assert (user_of[r], query_of[r], time_of[r]) == (u, q, t)


def test_preferred_items_agree_with_observed_clicks(data):
    gt = data.ground_truth
    ev = data.dataset.events
    rec_clicks = ev.take((ev["event_type"] == "click") & (ev["query"] == ""))
    users = np.unique(rec_clicks["user_id"])
    k = 50
    top, scores = gt.preferred_items(users, k=k, return_scores=True)
    assert top.shape == (len(users), k) and all(len(set(row)) == k for row in top)
    assert np.all(np.diff(scores, axis=1) <= 0)
    assert set(top.ravel()) <= set(data.dataset.catalog["item_id"])
    best = {u: set(row) for u, row in zip(users, top)}
    hit = np.mean([i in best[u] for u, i in zip(rec_clicks["user_id"], rec_clicks["item_id"])])
    chance = k / TINY.n_items
    assert hit > 3 * chance
    # the top item is the argmax of the true query-free utility over the whole catalog
    grid = gt.model.personal(np.array([[0]]), np.arange(TINY.n_items)[None, :],
                             gt.model.users.preferred_device[np.array([[0]])])
    assert gt.preferred_items([gt.model.users.user_ids[0]], k=1)[0, 0] == gt.model.items.item_ids[np.argmax(grid)]


def test_save_load_round_trip_is_exact(data, labels, tmp_path):
    gt = data.ground_truth
    gt.save(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["ground_truth.json", "ground_truth.npz", "requests.csv"]
    with open(tmp_path / "ground_truth.json") as fh:
        assert json.load(fh)["config"]["seed"] == TINY.seed
    with open(tmp_path / "requests.csv") as fh:
        assert sum(1 for _ in fh) == TINY.n_sessions + 1
    back = GroundTruth.load(str(tmp_path))
    assert back.config == gt.config and back.model.intercept == gt.model.intercept
    assert back.requests.equals(gt.requests)
    for part in ("items", "users", "taxonomy"):
        for name, value in vars(getattr(gt.model, part)).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(getattr(getattr(back.model, part), name), value, err_msg=f"{part}.{name}")
            else:
                assert getattr(getattr(back.model, part), name) == value
    np.testing.assert_array_equal(back.click_probability(labels.request_ids, labels.item_ids),
                                  gt.click_probability(labels.request_ids, labels.item_ids))
    np.testing.assert_array_equal(back.preferred_items(data.dataset.users["user_id"][:20], k=5),
                                  gt.preferred_items(data.dataset.users["user_id"][:20], k=5))
    assert back.best_auc(data.dataset.events) == gt.best_auc(data.dataset.events)


def test_load_rejects_other_directories(tmp_path):
    (tmp_path / "ground_truth.json").write_text(json.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(ValueError, match="not a tfrec-synthetic-ground-truth"):
        GroundTruth.load(str(tmp_path))
