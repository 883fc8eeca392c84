"""TokenBiases: mean-pooled per-token scalars per output, zero at the start, L2 only on the rows a batch looks up."""

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.layers.token_biases import TokenBiases


def _encoded():
    # Two rows: user 0 with genres {0, 2}; user 1 with genre {1}.
    return {"user": {"ids": tf.ragged.constant([[0], [1]], dtype=tf.int64)},
            "genre": {"ids": tf.ragged.constant([[0, 2], [1]], dtype=tf.int64)}}


def test_biases_start_at_zero_and_mean_pool_each_rows_tokens():
    layer = TokenBiases({"user": 4, "genre": 3}, outputs=2)
    np.testing.assert_array_equal(layer(_encoded()).numpy(), np.zeros((2, 4)))
    layer.tables["user"].assign(np.arange(8, dtype=np.float32).reshape(4, 2))
    layer.tables["genre"].assign([[1.0, -1.0], [2.0, 0.0], [3.0, 5.0]])
    out = layer(_encoded()).numpy()
    # feature-major: [user o0, user o1, genre o0, genre o1]; row 0's genre is the mean of genres 0 and 2.
    np.testing.assert_allclose(out, [[0.0, 1.0, 2.0, 2.0], [2.0, 3.0, 2.0, 0.0]])
    assert layer.output_dim == 4


def test_l2_acts_on_the_looked_up_rows_per_example_while_training_only():
    layer = TokenBiases({"user": 4, "genre": 3}, outputs=1, l2=0.5)
    layer.build()
    layer.tables["user"].assign([[1.0], [2.0], [30.0], [40.0]])  # rows 2 and 3 are never looked up
    layer.tables["genre"].assign([[1.0], [1.0], [3.0]])
    layer(_encoded(), training=False)
    assert not layer.losses
    layer(_encoded(), training=True)
    # looked-up rows: users 0, 1 (1 + 4) and genres 0, 2, 1 (1 + 9 + 1); 0.5 * 16 / 2 examples
    assert float(layer.losses[0]) == pytest.approx(0.5 * 16.0 / 2)


def test_config_round_trip_and_bad_arguments():
    layer = TokenBiases({"user": 4}, outputs=3, l2=1e-4, name="biases")
    rebuilt = TokenBiases.from_config(layer.get_config())
    assert (rebuilt.id_spaces, rebuilt.outputs, rebuilt.l2) == ({"user": 4}, 3, 1e-4)
    with pytest.raises(ValueError, match="outputs"):
        TokenBiases({"user": 4}, outputs=0)
    with pytest.raises(ValueError, match="l2"):
        TokenBiases({"user": 4}, l2=-1.0)
