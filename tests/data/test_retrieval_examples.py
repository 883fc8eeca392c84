"""Retrieval positives: one per (request, item), histories strictly from the past, and the three split protocols."""

import numpy as np
import pytest

from tfrec.data.retrieval_examples import (
    RetrievalSplitConfig, catalog_columns, histories, positive_examples, sampling_probability, split_positives,
)
from tfrec.data.schema import CATALOG_SCHEMA, EVENTS_SCHEMA, Dataset, Table


def _dataset():
    catalog = Table.from_rows(CATALOG_SCHEMA, [{"item_id": f"i{k}", "title": f"item {k}", "price": 1.0 + k} for k in range(6)])
    rows = [
        # u1 clicks i1 then buys it in the same request (one positive), later clicks i2 and i3 at the same second
        dict(user_id="u1", item_id="i0", event_type="impression", timestamp=100, request_id="r1"),
        dict(user_id="u1", item_id="i1", event_type="click", timestamp=101, request_id="r1"),
        dict(user_id="u1", item_id="i1", event_type="purchase", timestamp=102, request_id="r1"),
        dict(user_id="u1", item_id="i2", event_type="click", timestamp=200, request_id="r2", query="red shoes"),
        dict(user_id="u1", item_id="i3", event_type="click", timestamp=200, request_id="r2", query="red shoes"),
        dict(user_id="u1", item_id="i4", event_type="add_to_cart", timestamp=300, request_id="r3"),
        dict(user_id="u2", item_id="i5", event_type="click", timestamp=150, request_id="r4"),
        dict(user_id="u2", item_id="i1", event_type="rate", timestamp=250, rating=4.0),
    ]
    return Dataset(catalog=catalog, events=Table.from_rows(EVENTS_SCHEMA, rows))


def test_positives_dedupe_requests_and_histories_never_see_the_present_or_future():
    columns = positive_examples(_dataset(), history_length=2)
    got = list(zip(columns["user_id"], columns["item_id"], columns["recent_items"]))
    assert got == [
        ("u1", "i1", ""),
        ("u2", "i5", ""),
        ("u1", "i2", "i1"),
        ("u1", "i3", "i1"),  # i2 happened in the same second: not history
        ("u2", "i1", "i5"),
        ("u1", "i4", "i2 i3"),  # only the newest 2
    ]
    assert list(columns["title"][:2]) == ["item 1", "item 5"] and columns["query"][2] == "red shoes"


def test_histories_length_zero_and_bad_length():
    assert list(histories(np.array(["a", "a"], object), np.array(["x", "y"], object), np.array([1, 2]), 0)) == ["", ""]
    with pytest.raises(ValueError, match="history_length"):
        positive_examples(_dataset(), history_length=-1)


def test_no_positive_types_is_a_clear_error():
    with pytest.raises(ValueError, match="none of the positive types"):
        positive_examples(_dataset(), event_types=["purchase_order"])


def test_split_protocols():
    n = 1000
    rng = np.random.default_rng(0)
    columns = {"user_id": rng.integers(0, 50, n).astype(str).astype(object), "timestamp": np.arange(n),
               "request_id": np.array([f"r{i}" for i in range(n)], object)}
    time = split_positives(RetrievalSplitConfig("time", 0.1, 0.2), columns)
    assert columns["timestamp"][time["train"]].max() < columns["timestamp"][time["test"]].min()
    random = split_positives(RetrievalSplitConfig("random", 0.1, 0.2, seed=42), columns)
    again = split_positives(RetrievalSplitConfig("random", 0.0, 0.2, seed=42), columns)
    assert len(random["test"]) == 200 and np.array_equal(random["test"], again["test"])  # test set independent of validation
    lloo = split_positives(RetrievalSplitConfig("leave_last_out", 0.5, 0.2), columns)
    for part in ("train", "validation"):
        for user in np.unique(columns["user_id"][lloo["test"]]):
            rows = np.flatnonzero(columns["user_id"] == user)
            assert rows.max() in lloo["test"] and (rows.max() not in lloo[part])
    assert len(lloo["test"]) == 50
    for protocol in ("time", "random", "leave_last_out"):
        parts = split_positives(RetrievalSplitConfig(protocol, 0.1, 0.2), columns)
        assert sum(len(p) for p in parts.values()) == n
        assert len(np.unique(np.concatenate(list(parts.values())))) == n


def test_sampling_probability_and_catalog_columns():
    p = sampling_probability(np.array(["a", "a", "b", "c"], object), np.array(["a", "b", "zz"], object))
    np.testing.assert_allclose(p, [0.5, 0.25, 0.25])
    columns = catalog_columns(_dataset(), ["item_id", "title", "price"])
    assert list(columns["item_id"]) == [f"i{k}" for k in range(6)] and columns["price"][2] == 3.0
    with pytest.raises(ValueError, match="no column for candidate features \\['colour'\\]"):
        catalog_columns(_dataset(), ["item_id", "colour"])
