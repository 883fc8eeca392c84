"""Impression examples (label join), train/validation/test splits, negative sampling."""

import numpy as np
import pytest

from tfrec.data.examples import impression_examples
from tfrec.data.negatives import sample_negatives, sampled_examples
from tfrec.data.schema import CATALOG_SCHEMA, EVENTS_SCHEMA, USERS_SCHEMA, Dataset, Table
from tfrec.data.splits import SplitConfig, random_split, split_indices, time_split


def _dataset():
    catalog = Table.from_rows(
        CATALOG_SCHEMA,
        [
            dict(item_id="i1", title="Red shoe", category="A > B", brand="acme", price=10.0, color="red"),
            dict(item_id="i2", title="Hat", category="C", brand="zed", price=20.0, color="blue"),
        ],
    )
    users = Table.from_rows(USERS_SCHEMA, [dict(user_id="u1", segment="premium")])
    ev = [
        # request r1: i1 shown and clicked then bought, i2 shown only
        dict(user_id="u1", item_id="i1", event_type="impression", timestamp=100, position=0, price=9.5, request_id="r1", query="shoe", device="app"),
        dict(user_id="u1", item_id="i2", event_type="impression", timestamp=100, position=1, request_id="r1", query="shoe", device="app"),
        dict(user_id="u1", item_id="i1", event_type="click", timestamp=110, position=0, request_id="r1", device="app"),
        dict(user_id="u1", item_id="i1", event_type="purchase", timestamp=200, request_id="r1", device="app"),
        # no request ids: u2 clicks i2 within the window of the first impression, not the second
        dict(user_id="u2", item_id="i2", event_type="impression", timestamp=1000, position=0, device="web"),
        dict(user_id="u2", item_id="i2", event_type="click", timestamp=1500, device="web"),
        dict(user_id="u2", item_id="i2", event_type="impression", timestamp=5000, position=0, device="web"),
    ]
    return Dataset(catalog, Table.from_rows(EVENTS_SCHEMA, ev), users)


def test_impression_examples_join_labels_items_and_users():
    ex = impression_examples(_dataset(), window_seconds=1800)
    assert ex["item_id"].tolist() == ["i1", "i2", "i2", "i2"]
    assert ex["click"].tolist() == [1, 0, 1, 0]
    assert ex["purchase"].tolist() == [1, 0, 0, 0]
    assert ex["add_to_cart"].tolist() == [0, 0, 0, 0]
    assert ex["price"].tolist() == [9.5, 20.0, 20.0, 20.0]  # shown price, else list price
    assert ex["category"].tolist() == ["A > B", "C", "C", "C"]
    assert ex["color"].tolist() == ["red", "blue", "blue", "blue"]
    assert ex["segment"].tolist() == ["premium", "premium", "", ""]  # u2 has no user row
    assert ex["device"].tolist() == ["app", "app", "web", "web"]


def test_no_impressions_is_a_clear_error():
    ds = _dataset()
    events = ds.events.take(ds.events["event_type"] != "impression")
    with pytest.raises(ValueError, match="no impressions.*sampled_examples"):
        impression_examples(Dataset(ds.catalog, events, ds.users))


def test_time_split_is_ordered_and_keeps_requests_whole():
    rng = np.random.default_rng(0)
    n_req = 200
    req = np.repeat(np.arange(n_req), 5).astype(str).astype(object)
    ts = np.repeat(rng.permutation(n_req) * 10, 5) + np.tile(np.arange(5), n_req)
    train, val, test = time_split(ts, 0.1, 0.2, groups=req)
    assert len(train) + len(val) + len(test) == len(ts)
    assert ts[train].max() < ts[val].min() and ts[val].max() < ts[test].min()
    assert len(test) == 200 and len(val) == 100
    for part in (train, val, test):
        assert set(req[part]).isdisjoint(set(req[np.setdiff1d(np.arange(len(ts)), part)]))


def test_random_split_is_seeded():
    a = random_split(1000, 0.1, 0.2, seed=42)
    b = random_split(1000, 0.1, 0.2, seed=42)
    c = random_split(1000, 0.1, 0.2, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[2], c[2])
    assert [len(x) for x in a] == [700, 100, 200]
    assert split_indices(SplitConfig(kind="random", test_fraction=0.2, seed=42), np.zeros(1000))[2].tolist() == a[2].tolist()


def test_split_config_validation():
    with pytest.raises(ValueError, match="leave some data for training"):
        SplitConfig(validation_fraction=0.5, test_fraction=0.5).validate()


def test_negatives_never_hit_the_users_positives_and_follow_popularity():
    rng = np.random.default_rng(0)
    users = np.array([f"u{u}" for u in rng.integers(0, 50, 2000)], dtype=object)
    items = np.array([f"i{min(int(rng.zipf(1.5)), 100)}" for _ in range(2000)], dtype=object)
    candidates = np.array([f"i{i}" for i in range(1, 101)], dtype=object)
    neg_u, neg_i = sample_negatives(users, items, candidates, per_positive=3, seed=1)
    assert len(neg_u) == 6000
    positives = set(zip(users, items))
    assert not any((u, i) in positives for u, i in zip(neg_u, neg_i))
    _, pop_i = sample_negatives(users, items, candidates, per_positive=3, alpha=1.0, seed=1)
    # popularity sampling draws popular items far more often than uniform sampling does
    counts = {i: c for i, c in zip(*np.unique(items, return_counts=True))}
    popularity = lambda sampled: np.mean([counts.get(i, 0) for i in sampled])  # noqa: E731
    assert popularity(pop_i) > 2 * popularity(neg_i)


def test_sampled_examples_labels():
    ds = _dataset()
    ex = sampled_examples(ds, per_positive=1, event_types=("purchase",), label="click")
    assert ex["click"].tolist() == [1, 0]
    assert ex["item_id"].tolist() == ["i1", "i2"]
    assert ex["timestamp"].tolist() == [200, 200]
