"""FieldInteractions: per-output dot products of mean-pooled factor vectors of declared feature pairs, sparse L2."""

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.layers.field_interactions import FieldInteractions


def _encoded():
    # Two rows: user 0 with genres {0, 2}; user 1 with genre {1}; items 1 and 0.
    return {"user": {"ids": tf.ragged.constant([[0], [1]], dtype=tf.int64)},
            "genre": {"ids": tf.ragged.constant([[0, 2], [1]], dtype=tf.int64)},
            "item": {"ids": tf.ragged.constant([[1], [0]], dtype=tf.int64)}}


def test_products_are_per_output_dot_products_of_pooled_factors():
    layer = FieldInteractions({"user": 2, "genre": 3, "item": 2}, [["user", "genre"], ["user", "item"]], dim=2,
                              outputs=2)
    layer.build()
    rng = np.random.default_rng(0)
    tables = {n: rng.normal(size=t.shape).astype(np.float32) for n, t in layer.tables.items()}
    for name, value in tables.items():
        layer.tables[name].assign(value)
    out = layer.products(layer(_encoded())).numpy()
    assert out.shape == (2, 4) and layer.output_dim == 4  # pair-major: [ug o0, ug o1, ui o0, ui o1]
    user = tables["user"][[0, 1]].reshape(2, 2, 2)  # [row, output, dim]
    genre = np.stack([tables["genre"][[0, 2]].mean(0), tables["genre"][1]]).reshape(2, 2, 2)
    item = tables["item"][[1, 0]].reshape(2, 2, 2)
    expected = np.concatenate([(user * genre).sum(-1), (user * item).sum(-1)], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert layer(_encoded()).shape == (2, layer.vector_dim) and layer.vector_dim == 3 * 2 * 2


def test_l2_acts_on_the_looked_up_factors_while_training_only():
    layer = FieldInteractions({"user": 3, "item": 2}, [["user", "item"]], dim=1, l2=0.5)
    layer.build()
    layer.tables["user"].assign([[1.0], [2.0], [30.0]])  # row 2 is never looked up
    layer.tables["item"].assign([[1.0], [3.0]])
    encoded = {k: v for k, v in _encoded().items() if k != "genre"}
    layer(encoded, training=False)
    assert not layer.losses
    layer(encoded, training=True)
    assert float(layer.losses[0]) == pytest.approx(0.5 * (1 + 4 + 9 + 1) / 2)  # users 0, 1; items 1, 0; 2 rows


def test_config_round_trip_and_bad_arguments():
    layer = FieldInteractions({"user": 4, "item": 5}, [["user", "item"]], dim=3, outputs=2, l2=1e-4, name="fm")
    rebuilt = FieldInteractions.from_config(layer.get_config())
    assert (rebuilt.id_spaces, rebuilt.pairs, rebuilt.dim, rebuilt.outputs, rebuilt.l2) == (
        {"user": 4, "item": 5}, [["user", "item"]], 3, 2, 1e-4)
    with pytest.raises(ValueError, match="two different"):
        FieldInteractions({"user": 4}, [["user", "user"]])
    with pytest.raises(ValueError, match="shoe_size"):
        FieldInteractions({"user": 4}, [["user", "shoe_size"]])
    with pytest.raises(ValueError, match="dim"):
        FieldInteractions({"user": 4, "item": 5}, [["user", "item"]], dim=0)
