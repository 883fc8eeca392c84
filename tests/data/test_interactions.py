"""Interaction splits for retrieval: leave-last-out order and eligibility, seeded random pairs, time pairs, errors."""

import numpy as np
import pytest

from tfrec.data.interactions import (
    interaction_counts, leave_last_out, random_pair_split, select_events, time_pair_split,
)
from tfrec.data.schema import CATALOG_SCHEMA, EVENTS_SCHEMA, Dataset, Table


def make_dataset(rows, catalog=("a", "b", "c", "d", "e")):
    """rows: (user, item, timestamp[, event_type]) in file order."""
    rows = [r if len(r) == 4 else (*r, "purchase") for r in rows]
    events = Table(EVENTS_SCHEMA, {
        "user_id": np.array([r[0] for r in rows], dtype=object),
        "item_id": np.array([r[1] for r in rows], dtype=object),
        "timestamp": np.array([r[2] for r in rows], dtype=np.int64),
        "event_type": np.array([r[3] for r in rows], dtype=object),
    })
    return Dataset(Table(CATALOG_SCHEMA, {"item_id": np.array(catalog, dtype=object)}), events)


def test_leave_last_out_holds_out_the_chronologically_last_item():
    # File order is not time order; u1's last two events tie at t=5, so the later row (d) is the last one.
    ds = make_dataset([("u1", "c", 5), ("u1", "a", 1), ("u2", "b", 3), ("u1", "d", 5), ("u2", "a", 2),
                       ("u1", "b", 2), ("u3", "e", 9)])
    train, test, items = leave_last_out(ds)
    held = dict(zip(test.user_ids.tolist(), test.item_ids.tolist()))
    assert held == {"u1": "d", "u2": "b"}  # u3 has one interaction: no history, no test pair
    history = {u: h.tolist() for u, h in zip(test.user_ids.tolist(), test.history)}
    assert history == {"u1": ["a", "b", "c"], "u2": ["a"]}
    assert len(train) == len(ds.events) - 2
    assert "e" in train["item_id"].tolist()  # the dropped user's events still train
    assert test.exclude_seen_default and test.protocol == "leave_last_out"
    assert items.tolist() == ["a", "b", "c", "d", "e"]


def test_leave_last_out_min_history_and_event_types():
    ds = make_dataset([("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u2", "a", 1), ("u2", "b", 2),
                       ("u2", "e", 9, "click")])
    assert leave_last_out(ds, event_types="purchase", min_history=3).test.user_ids.tolist() == ["u1"]
    assert sorted(leave_last_out(ds, min_history=3).test.user_ids.tolist()) == ["u1", "u2"]
    _, test, _ = leave_last_out(ds, event_types=["purchase"])
    assert dict(zip(test.user_ids.tolist(), test.item_ids.tolist())) == {"u1": "c", "u2": "b"}
    _, test, _ = leave_last_out(ds)  # all types: u2's click is their last interaction
    assert dict(zip(test.user_ids.tolist(), test.item_ids.tolist()))["u2"] == "e"
    with pytest.raises(ValueError, match="no user has at least 4"):
        leave_last_out(ds, min_history=4)


def test_errors_for_unknown_or_absent_event_types_and_empty_data():
    ds = make_dataset([("u1", "a", 1), ("u1", "b", 2)])
    with pytest.raises(ValueError, match="unknown event types \\['buy'\\]"):
        select_events(ds, ["buy"])
    with pytest.raises(ValueError, match="no events of types \\['click'\\]"):
        leave_last_out(ds, event_types="click")
    with pytest.raises(ValueError, match="no events"):
        leave_last_out(make_dataset([]))
    with pytest.raises(ValueError, match="test_fraction"):
        random_pair_split(ds, test_fraction=1.0)


def test_event_items_missing_from_the_catalog_become_candidates():
    ds = make_dataset([("u1", "a", 1), ("u1", "zz", 2)], catalog=("b", "a"))
    split = leave_last_out(ds)
    assert split.item_ids.tolist() == ["b", "a", "zz"]
    assert interaction_counts(split.train, split.item_ids).tolist() == [0.0, 1.0, 0.0]


def _many_events(n=500, seed=0):
    rng = np.random.default_rng(seed)
    users = [f"u{i}" for i in rng.integers(0, 20, n)]
    items = ["abcde"[i] for i in rng.integers(0, 5, n)]
    return make_dataset(list(zip(users, items, rng.integers(0, 1000, n).tolist())))


def test_random_pair_split_is_seeded_disjoint_and_complete():
    ds = _many_events()
    a, b, c = (random_pair_split(ds, 0.2, seed) for seed in (7, 7, 8))
    assert (len(a.train), len(a.test)) == (400, 100)
    assert a.train.equals(b.train) and np.array_equal(a.test.item_ids, b.test.item_ids)
    assert not a.train.equals(c.train)
    # train + test is exactly the event multiset: every row lands in one side, none in both
    remaining = {}
    for pair in zip(ds.events["user_id"].tolist(), ds.events["item_id"].tolist()):
        remaining[pair] = remaining.get(pair, 0) + 1
    for pair in [*zip(a.train["user_id"].tolist(), a.train["item_id"].tolist()),
                 *zip(a.test.user_ids.tolist(), a.test.item_ids.tolist())]:
        remaining[pair] -= 1
    assert set(remaining.values()) == {0}
    assert not a.test.exclude_seen_default
    # a pair's history is exactly its user's training items, oldest first
    user = a.test.user_ids[0]
    mask = a.train["user_id"] == user
    expected = a.train["item_id"][mask][np.lexsort((np.flatnonzero(mask), a.train["timestamp"][mask]))]
    assert a.test.history[0].tolist() == expected.tolist()


def test_time_pair_split_tests_on_the_newest_interactions():
    ds = _many_events()
    split = time_pair_split(ds, 0.1)
    assert (len(split.train), len(split.test)) == (450, 50)
    test_ts = np.sort(ds.events["timestamp"])[-50:]
    assert split.train["timestamp"].max() <= test_ts.min()
    assert split.test.protocol == "time_pair_split" and not split.test.exclude_seen_default
