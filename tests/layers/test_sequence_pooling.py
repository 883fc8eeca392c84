"""SequencePooling: padding never leaks into the result, order matters where it should, and it rebuilds from config."""

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.layers.sequence_pooling import SequencePooling


def _ragged(rows, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    vectors = [rng.normal(size=(n, dim)).astype(np.float32) for n in rows]
    return tf.RaggedTensor.from_row_lengths(np.concatenate(vectors), rows), vectors


@pytest.mark.parametrize("mode", ["mean", "attention", "transformer"])
def test_a_row_does_not_depend_on_other_rows_padding(mode):
    tf.keras.utils.set_random_seed(0)
    layer = SequencePooling(mode, max_length=8)
    batch, vectors = _ragged([3, 7, 1])
    pooled = layer(batch).numpy()
    alone = layer(tf.RaggedTensor.from_row_lengths(vectors[0], [3])).numpy()
    np.testing.assert_allclose(pooled[0], alone[0], rtol=1e-5, atol=1e-6)
    assert pooled.shape == (3, 4) and np.isfinite(pooled).all()


def test_mean_is_the_masked_average():
    batch, vectors = _ragged([2, 5])
    np.testing.assert_allclose(SequencePooling("mean")(batch).numpy(), [v.mean(0) for v in vectors], rtol=1e-5)


@pytest.mark.parametrize("mode", ["attention", "transformer"])
def test_order_matters_for_recency_aware_modes_and_only_the_newest_max_length_count(mode):
    tf.keras.utils.set_random_seed(1)
    layer = SequencePooling(mode, max_length=4)
    _, (v,) = _ragged([6], seed=3)
    forward = layer(tf.RaggedTensor.from_row_lengths(v, [6])).numpy()
    backward = layer(tf.RaggedTensor.from_row_lengths(v[::-1].copy(), [6])).numpy()
    assert not np.allclose(forward, backward, atol=1e-4)
    newest = layer(tf.RaggedTensor.from_row_lengths(v[2:], [4])).numpy()
    np.testing.assert_allclose(forward, newest, rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_bad_mode():
    layer = SequencePooling("transformer", max_length=5, num_heads=2, dropout=0.1)
    clone = SequencePooling.from_config(layer.get_config())
    assert (clone.mode, clone.max_length, clone.num_heads, clone.dropout) == ("transformer", 5, 2, 0.1)
    with pytest.raises(ValueError, match="mode must be one of"):
        SequencePooling("max")
