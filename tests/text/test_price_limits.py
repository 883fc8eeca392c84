"""The in-graph price-limit parser on the phrasings shoppers use."""

import math

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.text.price_limits import parse_price_limits

CASES = [
    ("bike light under 70", None, 70.0),
    ("lamp above $90", 90.0, None),
    ("belts between $20 and $60", 20.0, 60.0),
    ("shoes 20-30", 20.0, 30.0),
    ("less than $49.99 tv", None, 49.99),
    ("Shoes UNDER $80 for men", None, 80.0),
    ("from 100 to 200 dollars", 100.0, 200.0),
    ("at least 15 usd", 15.0, None),
    ("red shoes", None, None),
    ("100 pack batteries", None, None),
    ("", None, None),
    ("東京 under 5", None, 5.0),
]


@pytest.mark.parametrize("query,lo,hi", CASES)
def test_parse(query, lo, hi):
    got_lo, got_hi = (float(t.numpy()[0]) for t in parse_price_limits(tf.constant([query])))
    for got, want in ((got_lo, lo), (got_hi, hi)):
        if want is None:
            assert math.isnan(got), (query, got)
        else:
            assert got == pytest.approx(want, rel=1e-6), query


def test_batch_shapes_follow_input():
    lo, hi = parse_price_limits(tf.constant([["under 5", "x"]]))
    assert lo.shape == (2,) and hi.shape == (2,)


def test_a_batch_with_repeated_queries_gets_each_rows_own_limits():
    """Distinct queries are parsed once and gathered back: every row must still get its own query's limits."""
    queries = [q for q, _, _ in CASES]
    batch = [queries[i] for i in (3, 0, 3, 8, 2, 0, 11, 3, 2)] * 20
    lo, hi = (t.numpy() for t in parse_price_limits(tf.constant(batch)))
    want = {q: (float("nan") if a is None else a, float("nan") if b is None else b) for q, a, b in CASES}
    expected = np.array([want[q] for q in batch], dtype=np.float32)
    np.testing.assert_allclose(np.stack([lo, hi], axis=1), expected, rtol=1e-6)
