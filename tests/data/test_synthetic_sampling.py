"""Vectorised sampling helpers of the synthetic generator: draws follow the weights, never pick zero weights."""

from __future__ import annotations

import numpy as np
import pytest

from tfrec.data.synthetic._sampling import GroupedSampler, nice_price, zipf_weights


def test_grouped_sampler_follows_weights_within_each_group():
    groups = np.array([2, 0, 2, 1, 0, 2])  # unsorted on purpose
    weights = np.array([1.0, 3.0, 0.0, 5.0, 1.0, 3.0])
    sampler = GroupedSampler(groups, weights, n_groups=4)
    rng = np.random.default_rng(0)
    asked = np.repeat([0, 1, 2], 20_000)
    drawn = sampler.sample(asked, rng)
    assert np.all(groups[drawn] == asked)
    assert not np.any(drawn == 2)  # zero weight
    for element, share in ((1, 0.75), (4, 0.25), (0, 0.25), (5, 0.75)):
        group = groups[element]
        assert np.mean(drawn[asked == group] == element) == pytest.approx(share, abs=0.015)
    assert not sampler.has_mass[3]
    with pytest.raises(ValueError, match="no positive weight"):
        sampler.sample(np.array([3]), rng)


def test_from_matrix_returns_column_indices_per_row():
    probs = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    sampler = GroupedSampler.from_matrix(probs)
    rng = np.random.default_rng(1)
    assert np.all(sampler.sample(np.zeros(100, dtype=int), rng) == 1)
    row1 = sampler.sample(np.ones(10_000, dtype=int), rng)
    assert set(row1) == {0, 2} and np.mean(row1 == 0) == pytest.approx(0.5, abs=0.02)


def test_labels_replace_element_indices():
    sampler = GroupedSampler(np.array([0, 0, 1]), np.array([1.0, 0.0, 1.0]), 2, labels=np.array([7, 8, 9]))
    rng = np.random.default_rng(2)
    assert set(sampler.sample(np.array([0, 0, 1, 1]), rng)) == {7, 9}


def test_same_generator_state_gives_same_draws():
    sampler = GroupedSampler(np.repeat(np.arange(50), 4), np.random.default_rng(3).random(200), 50)
    groups = np.random.default_rng(4).integers(0, 50, 1000)
    a = sampler.sample(groups, np.random.default_rng(5))
    b = sampler.sample(groups, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_zipf_weights_are_skewed_and_normalised():
    w = zipf_weights(1000, 1.0, np.random.default_rng(0))
    assert w.sum() == pytest.approx(1.0)
    top = np.sort(w)[::-1]
    assert top[:100].sum() > 0.5
    assert np.any(np.diff(w) > 0)  # ranks are shuffled: heavy entities are not simply the first ids


def test_nice_price_rounds_to_typed_values():
    np.testing.assert_array_equal(nice_price(np.array([3.4, 23.0, 87.0, 640.0, 1234.0, 0.2])),
                                  [3.0, 25.0, 90.0, 650.0, 1200.0, 1.0])
