"""HashedLinear: the linear part of a wide model over hashed tokens, hashed token crosses and numeric values.

logit = b + Σ_t w[fp(f=t) mod N] + Σ_c w[cross(fp(f₁=t₁), fp(f₂=t₂), …) mod N] + Σ_j v_j · x_j

where t ranges over the tokens of each token feature (a one-hot / multi-hot indicator xᵢ = 1), c over the cartesian
product of tokens of each declared cross (user×category, query-term×category, …), fp is a 62-bit FarmHash
fingerprint of the feature-prefixed token, `cross` is `tf.sparse.cross_hashed`'s fingerprint combination (no cross
strings are ever built), N = `hash_buckets` weights in one shared table, and x_j are standardised numeric features. Only the weights a batch touches receive
gradients (sparse updates), and L2 is applied to those same weights ("sparse L2", as FTRL does), scaled per example.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import tensorflow as tf

from tfrec.features.ragged_rows import concat_rows, row_sum, sparse_rows
from tfrec.layers.regularizers import replicas_in_sync

FINGERPRINT_SPACE = 1 << 62


def prefixed_tokens(name: str, tokens: tf.RaggedTensor) -> tf.RaggedTensor:
    """Tokens made unique across features: 'brand=acme'."""
    return tf.ragged.map_flat_values(lambda t: tf.strings.join([name + "=", t]), tokens)


def token_fingerprints(name: str, tokens: tf.RaggedTensor) -> tf.RaggedTensor:
    """fp(f=t): the 62-bit fingerprint of each feature-prefixed token."""
    return tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, prefixed_tokens(name, tokens), FINGERPRINT_SPACE)


def hashed_cross(fingerprints: Sequence[tf.RaggedTensor], buckets: int) -> tf.RaggedTensor:
    """The bucket in [0, buckets) of every combination of the features' tokens, per row (no strings built)."""
    return sparse_rows(tf.sparse.cross_hashed([f.to_sparse() for f in fingerprints], num_buckets=buckets))


class HashedLinear(tf.keras.layers.Layer):
    """Computes the logit above from a FeatureEncoder's output."""

    def __init__(
        self,
        hash_buckets: int,
        token_features: Sequence[str],
        numeric_features: Sequence[str] = (),
        crosses: Sequence[Sequence[str]] = (),
        l2: float = 0.0,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")  # preprocessing and wide sums stay float32 under mixed precision
        super().__init__(**kwargs)
        if hash_buckets < 1:
            raise ValueError(f"hash_buckets must be >= 1, got {hash_buckets}")
        for cross in crosses:
            if len(cross) < 2:
                raise ValueError(f"a cross needs at least two features, got {list(cross)}")
        self.hash_buckets = int(hash_buckets)
        self.token_features = list(token_features)
        self.numeric_features = list(numeric_features)
        self.crosses = [list(c) for c in crosses]
        self.l2 = float(l2)

    def build(self, input_shape=None):
        self.table = self.add_weight("hashed_weights", [self.hash_buckets], initializer="zeros")
        self.numeric_kernel = self.add_weight("numeric_weights", [len(self.numeric_features)], initializer="zeros")
        self.bias = self.add_weight("bias", [], initializer="zeros")
        super().build(input_shape)

    def bucket_ids(self, encoded: Dict[str, Dict[str, tf.Tensor]]) -> tf.RaggedTensor:
        """The weight-table index of every token and cross of each example (what the weights are looked up by)."""
        names = dict.fromkeys(self.token_features + [n for cross in self.crosses for n in cross])
        fingerprints = {n: token_fingerprints(n, encoded[n]["tokens"]) for n in names}
        pieces: List[tf.RaggedTensor] = [fingerprints[n] % self.hash_buckets for n in self.token_features]
        for cross in self.crosses:
            pieces.append(hashed_cross([fingerprints[n] for n in cross], self.hash_buckets))
        return concat_rows(pieces)

    def call(self, encoded: Dict[str, Dict[str, tf.Tensor]], training=None) -> tf.Tensor:
        ids = self.bucket_ids(encoded)
        weights = tf.gather(self.table, ids.flat_values)
        logit = row_sum(weights, ids.row_splits)
        if self.numeric_features:
            values = tf.stack([encoded[n]["value"] for n in self.numeric_features], axis=1)
            logit += tf.linalg.matvec(values, self.numeric_kernel)
        if self.l2 > 0 and training:
            # Scaled per example of the *global* batch, so replicas that sum their gradients add up to one penalty;
            # the numeric kernel's term does not depend on the examples, so every replica adds 1/replicas of it.
            replicas = replicas_in_sync()
            batch = tf.cast(tf.shape(logit)[0] * replicas, weights.dtype)
            numeric = tf.reduce_sum(tf.square(self.numeric_kernel)) / replicas
            self.add_loss(self.l2 * (tf.reduce_sum(tf.square(weights)) + numeric) / batch)
        return logit + self.bias

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hash_buckets": self.hash_buckets,
                "token_features": self.token_features,
                "numeric_features": self.numeric_features,
                "crosses": self.crosses,
                "l2": self.l2,
            }
        )
        return config
