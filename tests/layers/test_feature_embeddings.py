"""FeatureEmbeddings: features with one token per row skip the segment mean and must give the very same vectors;
bad `single_token` names are refused."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec.features.tokens import bucket_ids, categorical_tokens, text_tokens
from tfrec.layers.feature_embeddings import FeatureEmbeddings

SPACES = {"brand": 50, "price": 12, "title": 80}


def _encoded():
    brand = categorical_tokens(tf.constant(["acme", "", "nike", "acme", "zeta"]))
    title = text_tokens(tf.constant(["red shoe", "", "a b c d", "kettle", "x"]))
    hashed = lambda t, n: tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, t, n)  # noqa: E731
    return {"brand": {"ids": hashed(brand, SPACES["brand"])},
            "price": {"ids": bucket_ids(tf.constant([1.0, 5.0, float("nan"), 30.0, 2.0]), [2.0, 10.0]),
                      "value": tf.constant([0.1, 0.2, 0.0, 0.4, 0.5])},
            "title": {"ids": hashed(title, SPACES["title"])}}


def test_single_token_features_give_the_same_vectors_as_the_mean():
    encoded = _encoded()
    pooled = FeatureEmbeddings(SPACES, ["price"], embedding_dim=4)
    single = FeatureEmbeddings(SPACES, ["price"], embedding_dim=4, single_token=["brand", "price"])
    want = pooled(encoded)
    single(encoded)
    single.set_weights(pooled.get_weights())
    got = single(encoded)
    assert got.shape == (5, 3 * 4 + 1)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    # the text feature (several tokens per row) is still a mean: row 2 averages four word vectors
    assert not np.allclose(want.numpy()[2, 8:12], 0.0)
    assert FeatureEmbeddings.from_config(single.get_config()).single_token == ["brand", "price"]


@pytest.mark.parametrize("kwargs, message", [
    ({"single_token": ["colour"]}, "single_token names ['colour'], which are not token features here"),
    ({"single_token": ["title"], "sequence_pooling": {"title": {"mode": "mean"}}},
     "['title'] are both single_token and sequence_pooling features"),
])
def test_bad_single_token_names_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FeatureEmbeddings(SPACES, embedding_dim=4, **kwargs)
